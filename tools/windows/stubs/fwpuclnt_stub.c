/*
 * Test stub of fwpuclnt.dll for running switchyard's real koffi bindings under Wine (Wine's own
 * fwpuclnt answers FwpmEngineOpen0 with 0x6E4). Built with x86_64-w64-mingw32-gcc; loaded instead of
 * Wine's DLL with WINEDLLOVERRIDES=fwpuclnt=n and the DLL next to node.exe.
 *
 * It logs every call, one line each, to the file named by SY_STUB_LOG; keeps filters in memory with
 * transaction semantics (staged until commit, dropped on abort; a dynamic session's filters vanish on
 * close) so that enumeration and read-back see what a commit made; and fails the Nth call of a given
 * function with FWP_E_ALREADY_EXISTS-like status when SY_STUB_FAIL=Name#N (e.g. FwpmFilterAdd0#3).
 * The state lives in one process; it is not persisted (the test runs one process per scenario).
 */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <fwpmu.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXF 512
typedef struct { GUID key; GUID layer; int dynamic_owner; int used; } FILTER;
typedef struct { FILTER f[MAXF]; int provider; int sublayer; } STATE;

static STATE committed, staged;
static int in_txn[64];
static int dynamic_session[64];
static int next_session = 1;
static FILE *logf;
static char fail_name[64];
static int fail_at = -1;

static void init(void) {
    static int done;
    if (done) return;
    done = 1;
    const char *p = getenv("SY_STUB_LOG");
    logf = p ? fopen(p, "a") : stderr;
    const char *f = getenv("SY_STUB_FAIL");
    if (f) {
        const char *h = strchr(f, '#');
        if (h && h - f < 63) {
            memcpy(fail_name, f, (size_t)(h - f));
            fail_at = atoi(h + 1);
        }
    }
}

static void logline(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(logf, fmt, ap);
    va_end(ap);
    fputc('\n', logf);
    fflush(logf);
}

/* Counts calls per name; returns non-zero when this call is the one to fail. */
static int should_fail(const char *name) {
    static char names[32][64];
    static int counts[32];
    int i;
    for (i = 0; i < 32 && names[i][0]; i++) if (!strcmp(names[i], name)) break;
    if (i == 32) return 0;
    if (!names[i][0]) strcpy(names[i], name);
    counts[i]++;
    if (fail_at > 0 && !strcmp(name, fail_name) && counts[i] == fail_at) {
        logline("%s -> injected failure", name);
        return 1;
    }
    return 0;
}

static void guidstr(const GUID *g, char *out) {
    sprintf(out, "%08lx-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", (unsigned long)g->Data1, g->Data2, g->Data3,
            g->Data4[0], g->Data4[1], g->Data4[2], g->Data4[3], g->Data4[4], g->Data4[5], g->Data4[6], g->Data4[7]);
}

static void wstr(const wchar_t *w, char *out, size_t cap) {
    size_t i = 0;
    for (; w && w[i] && i + 1 < cap; i++) out[i] = (char)w[i];
    out[i] = 0;
}

static int sid(HANDLE h) { return (int)(INT_PTR)h; }
static STATE *cur(HANDLE h) { return in_txn[sid(h)] ? &staged : &committed; }

#define FAIL_STATUS 0x80320009u

DWORD WINAPI FwpmEngineOpen0(const wchar_t *server, UINT32 authn, SEC_WINNT_AUTH_IDENTITY_W *id, const FWPM_SESSION0 *s, HANDLE *h) {
    init();
    (void)server; (void)id;
    char name[128];
    wstr(s ? s->displayData.name : NULL, name, sizeof name);
    if (should_fail("FwpmEngineOpen0")) return FAIL_STATUS;
    int n = next_session++;
    dynamic_session[n] = s && (s->flags & 1);
    *h = (HANDLE)(INT_PTR)n;
    logline("FwpmEngineOpen0 session=%d dynamic=%d authn=%#x name=%s", n, dynamic_session[n], authn, name);
    return 0;
}

DWORD WINAPI FwpmEngineClose0(HANDLE h) {
    init();
    int n = sid(h);
    logline("FwpmEngineClose0 session=%d", n);
    if (dynamic_session[n])
        for (int i = 0; i < MAXF; i++)
            if (committed.f[i].used && committed.f[i].dynamic_owner == n) committed.f[i].used = 0;
    in_txn[n] = 0;
    return 0;
}

DWORD WINAPI FwpmTransactionBegin0(HANDLE h, UINT32 flags) {
    init();
    logline("FwpmTransactionBegin0 session=%d flags=%u", sid(h), flags);
    if (should_fail("FwpmTransactionBegin0")) return FAIL_STATUS;
    staged = committed;
    in_txn[sid(h)] = 1;
    return 0;
}

DWORD WINAPI FwpmTransactionCommit0(HANDLE h) {
    init();
    logline("FwpmTransactionCommit0 session=%d", sid(h));
    if (should_fail("FwpmTransactionCommit0")) return FAIL_STATUS;
    committed = staged;
    in_txn[sid(h)] = 0;
    return 0;
}

DWORD WINAPI FwpmTransactionAbort0(HANDLE h) {
    init();
    logline("FwpmTransactionAbort0 session=%d", sid(h));
    in_txn[sid(h)] = 0;
    return 0;
}

DWORD WINAPI FwpmProviderAdd0(HANDLE h, const FWPM_PROVIDER0 *p, PSECURITY_DESCRIPTOR sd) {
    init();
    (void)sd;
    char g[40], name[128];
    guidstr(&p->providerKey, g);
    wstr(p->displayData.name, name, sizeof name);
    logline("FwpmProviderAdd0 session=%d key=%s flags=%u name=%s", sid(h), g, p->flags, name);
    if (should_fail("FwpmProviderAdd0")) return FAIL_STATUS;
    if (cur(h)->provider) return 0x80320009u; /* FWP_E_ALREADY_EXISTS, which the wrapper accepts */
    cur(h)->provider = 1;
    return 0;
}

DWORD WINAPI FwpmProviderDeleteByKey0(HANDLE h, const GUID *k) {
    init();
    char g[40];
    guidstr(k, g);
    logline("FwpmProviderDeleteByKey0 session=%d key=%s", sid(h), g);
    cur(h)->provider = 0;
    return 0;
}

DWORD WINAPI FwpmSubLayerAdd0(HANDLE h, const FWPM_SUBLAYER0 *s, PSECURITY_DESCRIPTOR sd) {
    init();
    (void)sd;
    char g[40], pk[40], name[128];
    guidstr(&s->subLayerKey, g);
    if (s->providerKey) guidstr(s->providerKey, pk); else strcpy(pk, "null");
    wstr(s->displayData.name, name, sizeof name);
    logline("FwpmSubLayerAdd0 session=%d key=%s provider=%s weight=%u flags=%u name=%s", sid(h), g, pk, s->weight, (unsigned)s->flags, name);
    if (should_fail("FwpmSubLayerAdd0")) return FAIL_STATUS;
    if (cur(h)->sublayer) return 0x80320009u;
    cur(h)->sublayer = 1;
    return 0;
}

DWORD WINAPI FwpmSubLayerDeleteByKey0(HANDLE h, const GUID *k) {
    init();
    char g[40];
    guidstr(k, g);
    logline("FwpmSubLayerDeleteByKey0 session=%d key=%s", sid(h), g);
    cur(h)->sublayer = 0;
    return 0;
}

DWORD WINAPI FwpmFilterAdd0(HANDLE h, const FWPM_FILTER0 *f, PSECURITY_DESCRIPTOR sd, UINT64 *id) {
    init();
    (void)sd;
    char g[40], name[160];
    guidstr(&f->filterKey, g);
    wstr(f->displayData.name, name, sizeof name);
    char conds[512] = "";
    for (UINT32 i = 0; i < f->numFilterConditions && strlen(conds) < 400; i++) {
        char c[64];
        sprintf(c, "%s%08lx/%u/%#x", i ? "," : "", (unsigned long)f->filterCondition[i].fieldKey.Data1,
                f->filterCondition[i].matchType, f->filterCondition[i].conditionValue.type);
        strcat(conds, c);
    }
    logline("FwpmFilterAdd0 session=%d key=%s flags=%u weight=%u action=%#x layer=%08lx n=%u [%s] name=%s", sid(h), g, f->flags,
            f->weight.uint8, f->action.type, (unsigned long)f->layerKey.Data1, f->numFilterConditions, conds, name);
    if (should_fail("FwpmFilterAdd0")) return FAIL_STATUS;
    STATE *st = cur(h);
    for (int i = 0; i < MAXF; i++) {
        if (!st->f[i].used) {
            st->f[i].used = 1;
            st->f[i].key = f->filterKey;
            st->f[i].layer = f->layerKey;
            st->f[i].dynamic_owner = dynamic_session[sid(h)] ? sid(h) : 0;
            if (id) *id = (UINT64)(i + 1000);
            return 0;
        }
    }
    return 0x8032000Bu;
}

DWORD WINAPI FwpmFilterDeleteByKey0(HANDLE h, const GUID *k) {
    init();
    char g[40];
    guidstr(k, g);
    logline("FwpmFilterDeleteByKey0 session=%d key=%s", sid(h), g);
    if (should_fail("FwpmFilterDeleteByKey0")) return FAIL_STATUS;
    STATE *st = cur(h);
    for (int i = 0; i < MAXF; i++)
        if (st->f[i].used && !memcmp(&st->f[i].key, k, sizeof(GUID))) { st->f[i].used = 0; return 0; }
    return 0x80320003u; /* FWP_E_FILTER_NOT_FOUND */
}

typedef struct { GUID layer; int pos; int session; } ENUMH;

DWORD WINAPI FwpmFilterCreateEnumHandle0(HANDLE h, const FWPM_FILTER_ENUM_TEMPLATE0 *t, HANDLE *eh) {
    init();
    char g[40], pk[40];
    guidstr(&t->layerKey, g);
    if (t->providerKey) guidstr(t->providerKey, pk); else strcpy(pk, "null");
    logline("FwpmFilterCreateEnumHandle0 session=%d provider=%s layer=%s", sid(h), pk, g);
    ENUMH *e = calloc(1, sizeof *e);
    e->layer = t->layerKey;
    e->session = sid(h);
    *eh = e;
    return 0;
}

DWORD WINAPI FwpmFilterEnum0(HANDLE h, HANDLE eh, UINT32 n, FWPM_FILTER0 ***entries, UINT32 *returned) {
    init();
    ENUMH *e = eh;
    STATE *st = cur(h);
    FWPM_FILTER0 **arr = calloc(n ? n : 1, sizeof *arr);
    UINT32 k = 0;
    for (; e->pos < MAXF && k < n; e->pos++) {
        if (!st->f[e->pos].used || memcmp(&st->f[e->pos].layer, &e->layer, sizeof(GUID))) continue;
        arr[k] = calloc(1, sizeof(FWPM_FILTER0));
        arr[k]->filterKey = st->f[e->pos].key;
        arr[k]->layerKey = st->f[e->pos].layer;
        k++;
    }
    *entries = arr;
    *returned = k;
    logline("FwpmFilterEnum0 session=%d returned=%u", sid(h), k);
    return 0;
}

DWORD WINAPI FwpmFilterDestroyEnumHandle0(HANDLE h, HANDLE eh) {
    init();
    logline("FwpmFilterDestroyEnumHandle0 session=%d", sid(h));
    free(eh);
    return 0;
}

DWORD WINAPI FwpmGetAppIdFromFileName0(const wchar_t *file, FWP_BYTE_BLOB **blob) {
    init();
    char name[260];
    wstr(file, name, sizeof name);
    logline("FwpmGetAppIdFromFileName0 file=%s", name);
    FWP_BYTE_BLOB *b = calloc(1, sizeof *b);
    size_t len = (wcslen(file) + 1) * 2;
    b->data = malloc(len);
    memcpy(b->data, file, len);
    b->size = (UINT32)len;
    *blob = b;
    return 0;
}

void WINAPI FwpmFreeMemory0(void **p) {
    init();
    logline("FwpmFreeMemory0");
    /* The stub leaks on purpose: entries arrays hold separately allocated filters. */
    if (p) *p = NULL;
}
