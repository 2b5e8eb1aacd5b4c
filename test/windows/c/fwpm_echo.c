/*
 * Test-only shared library (built for Linux x64 by test/windows/marshal.test.ts): describes an
 * FWPM_FILTER0 it receives, so the test can see what koffi actually wrote into memory for the filter
 * objects src/sys/windows/wfp.ts builds — nested pointers, unions and UTF-16 strings included.
 * The structs mirror Microsoft's x64 layout with explicit widths (wchar_t is 16-bit on Windows, so
 * names are uint16_t here); test/windows/abi.test.ts checks koffi's layout against the real headers.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct { uint32_t Data1; uint16_t Data2, Data3; uint8_t Data4[8]; } GUID;
typedef struct { uint32_t size; uint8_t *data; } FWP_BYTE_BLOB;
typedef struct { uint32_t addr, mask; } FWP_V4_ADDR_AND_MASK;
typedef struct { uint8_t addr[16]; uint8_t prefixLength; } FWP_V6_ADDR_AND_MASK;
typedef struct { uint32_t type; union { uint8_t uint8; uint16_t uint16; uint32_t uint32; void *ptr; }; } FWP_VALUE0;
typedef struct { FWP_VALUE0 valueLow, valueHigh; } FWP_RANGE0;
typedef struct {
    uint32_t type;
    union { uint8_t uint8; uint16_t uint16; uint32_t uint32; FWP_BYTE_BLOB *byteBlob;
            FWP_V4_ADDR_AND_MASK *v4AddrMask; FWP_V6_ADDR_AND_MASK *v6AddrMask; FWP_RANGE0 *rangeValue; };
} FWP_CONDITION_VALUE0;
typedef struct { uint16_t *name; uint16_t *description; } FWPM_DISPLAY_DATA0;
typedef struct { GUID fieldKey; uint32_t matchType; FWP_CONDITION_VALUE0 conditionValue; } FWPM_FILTER_CONDITION0;
typedef struct { uint32_t type; union { GUID filterType; GUID calloutKey; }; } FWPM_ACTION0;
typedef struct {
    GUID filterKey; FWPM_DISPLAY_DATA0 displayData; uint32_t flags; GUID *providerKey;
    FWP_BYTE_BLOB providerData; GUID layerKey; GUID subLayerKey; FWP_VALUE0 weight;
    uint32_t numFilterConditions; FWPM_FILTER_CONDITION0 *filterCondition; FWPM_ACTION0 action;
    union { uint64_t rawContext; GUID providerContextKey; }; GUID *reserved; uint64_t filterId;
    FWP_VALUE0 effectiveWeight;
} FWPM_FILTER0;

_Static_assert(sizeof(FWPM_FILTER0) == 200, "FWPM_FILTER0 is 200 bytes on x64");

static int put(char *out, size_t cap, size_t *pos, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#include <stdarg.h>
static int put(char *out, size_t cap, size_t *pos, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    int n = vsnprintf(out + *pos, *pos < cap ? cap - *pos : 0, fmt, ap);
    va_end(ap);
    if (n > 0) *pos += (size_t)n;
    return n;
}

static void guid(char *out, size_t cap, size_t *pos, const GUID *g) {
    put(out, cap, pos, "%08x-%04x-%04x-%02x%02x-", g->Data1, g->Data2, g->Data3, g->Data4[0], g->Data4[1]);
    for (int i = 2; i < 8; i++) put(out, cap, pos, "%02x", g->Data4[i]);
}

int sy_describe_filter(const FWPM_FILTER0 *f, char *out, uint32_t cap) {
    size_t pos = 0;
    put(out, cap, &pos, "key="); guid(out, cap, &pos, &f->filterKey);
    put(out, cap, &pos, " name=");
    for (const uint16_t *p = f->displayData.name; p && *p; p++) put(out, cap, &pos, "%c", (char)*p);
    put(out, cap, &pos, " flags=%u provider=", f->flags);
    if (f->providerKey) guid(out, cap, &pos, f->providerKey); else put(out, cap, &pos, "null");
    put(out, cap, &pos, " layer="); guid(out, cap, &pos, &f->layerKey);
    put(out, cap, &pos, " sublayer="); guid(out, cap, &pos, &f->subLayerKey);
    put(out, cap, &pos, " weight=%u:%u action=%#x n=%u", f->weight.type, f->weight.uint8, f->action.type, f->numFilterConditions);
    for (uint32_t i = 0; i < f->numFilterConditions; i++) {
        const FWPM_FILTER_CONDITION0 *c = &f->filterCondition[i];
        const FWP_CONDITION_VALUE0 *v = &c->conditionValue;
        put(out, cap, &pos, " [%08x m=%u t=%#x ", c->fieldKey.Data1, c->matchType, v->type);
        switch (v->type) {
            case 1: put(out, cap, &pos, "u8=%u", v->uint8); break;
            case 2: put(out, cap, &pos, "u16=%u", v->uint16); break;
            case 3: put(out, cap, &pos, "u32=%#x", v->uint32); break;
            case 12:
                put(out, cap, &pos, "blob=%u:", v->byteBlob->size);
                for (uint32_t k = 0; k < v->byteBlob->size; k++) put(out, cap, &pos, "%02x", v->byteBlob->data[k]);
                break;
            case 0x100: put(out, cap, &pos, "v4=%08x/%08x", v->v4AddrMask->addr, v->v4AddrMask->mask); break;
            case 0x101:
                put(out, cap, &pos, "v6=");
                for (int k = 0; k < 16; k++) put(out, cap, &pos, "%02x", v->v6AddrMask->addr[k]);
                put(out, cap, &pos, "/%u", v->v6AddrMask->prefixLength);
                break;
            case 0x102:
                put(out, cap, &pos, "range=%u:%u-%u:%u", v->rangeValue->valueLow.type, v->rangeValue->valueLow.uint16,
                    v->rangeValue->valueHigh.type, v->rangeValue->valueHigh.uint16);
                break;
            default: put(out, cap, &pos, "?"); break;
        }
        put(out, cap, &pos, "]");
    }
    return (int)pos;
}

/* A stand-in for FwpmGetAppIdFromFileName0's allocation: a blob the test passes back in. */
static uint8_t blob_bytes[4] = { 0xde, 0xad, 0xbe, 0xef };
static FWP_BYTE_BLOB blob = { 4, blob_bytes };
void *sy_test_blob(void) { return &blob; }
