/*
 * Test stub of WinDivert.dll (2.2 ABI) for running switchyard's real koffi bindings and reflect loop
 * under Wine, where no WinDivert driver exists. Built with x86_64-w64-mingw32-gcc.
 *
 * It replays a script (file named by SY_STUB_REPLAY), one record per line, in order across handles:
 *   N <packet hex> <WINDIVERT_ADDRESS hex>   delivered by WinDivertRecv on the NETWORK-layer handle
 *   S <WINDIVERT_ADDRESS hex>                delivered by WinDivertRecv on the SOCKET-layer handle
 * A record is only handed out after the previous one was taken and 50 ms have passed, so both
 * handles see the script in its order. When the script is done, Recv blocks until the handle is shut
 * down or closed, then fails with ERROR_NO_DATA. Every call is logged to SY_STUB_LOG; WinDivertSend
 * logs the packet and address it was given in hex, for the test to check with scapy.
 */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int layer; volatile LONG closed; } DH;

static FILE *logf;
static CRITICAL_SECTION lock;
static char **lines;
static int nlines, next;
static DWORD last_take;

static void logline(const char *fmt, ...) {
    va_list ap;
    EnterCriticalSection(&lock);
    va_start(ap, fmt);
    vfprintf(logf, fmt, ap);
    va_end(ap);
    fputc('\n', logf);
    fflush(logf);
    LeaveCriticalSection(&lock);
}

static void hexdump(char *out, const uint8_t *p, unsigned n) {
    for (unsigned i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
    out[2 * n] = 0;
}

static unsigned unhex(const char *s, uint8_t *out, unsigned cap) {
    unsigned n = 0;
    while (s[0] && s[1] && s[0] != ' ' && s[0] != '\n' && s[0] != '\r' && n < cap) {
        unsigned v;
        sscanf(s, "%2x", &v);
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

static void init(void) {
    static int done;
    if (done) return;
    done = 1;
    InitializeCriticalSection(&lock);
    const char *p = getenv("SY_STUB_LOG");
    logf = p ? fopen(p, "a") : stderr;
    const char *r = getenv("SY_STUB_REPLAY");
    FILE *f = r ? fopen(r, "r") : NULL;
    static char buf[200000];
    while (f && fgets(buf, sizeof buf, f)) {
        lines = realloc(lines, sizeof(char *) * (size_t)(nlines + 1));
        lines[nlines++] = strdup(buf);
    }
    if (f) fclose(f);
}

__declspec(dllexport) HANDLE WinDivertOpen(const char *filter, int layer, INT16 priority, UINT64 flags) {
    init();
    logline("WinDivertOpen layer=%d priority=%d flags=%llu filter=%s", layer, priority, (unsigned long long)flags, filter);
    DH *h = calloc(1, sizeof *h);
    h->layer = layer;
    return h;
}

__declspec(dllexport) BOOL WinDivertRecv(HANDLE handle, void *packet, UINT len, UINT *recvLen, uint8_t *addr) {
    DH *h = handle;
    char want = h->layer == 3 ? 'S' : 'N';
    for (;;) {
        if (h->closed) {
            SetLastError(ERROR_NO_DATA);
            return FALSE;
        }
        EnterCriticalSection(&lock);
        if (next < nlines && lines[next][0] == want && GetTickCount() - last_take >= 50) {
            char *l = lines[next++];
            last_take = GetTickCount();
            LeaveCriticalSection(&lock);
            const char *p = l + 2;
            unsigned n = 0;
            if (want == 'N') {
                n = unhex(p, packet, len);
                p = strchr(p, ' ') + 1;
            }
            memset(addr, 0, 80);
            unhex(p, addr, 80);
            if (recvLen) *recvLen = n;
            logline("WinDivertRecv layer=%d record=%d bytes=%u", h->layer, next - 1, n);
            return TRUE;
        }
        LeaveCriticalSection(&lock);
        Sleep(5);
    }
}

__declspec(dllexport) BOOL WinDivertSend(HANDLE handle, const void *packet, UINT len, UINT *sendLen, const uint8_t *addr) {
    DH *h = handle;
    static char pk[2 * 70000 + 1], ad[161];
    EnterCriticalSection(&lock);
    hexdump(pk, packet, len);
    hexdump(ad, addr, 80);
    fprintf(logf, "WinDivertSend layer=%d packet=%s addr=%s\n", h->layer, pk, ad);
    fflush(logf);
    LeaveCriticalSection(&lock);
    if (sendLen) *sendLen = len;
    return TRUE;
}

__declspec(dllexport) BOOL WinDivertShutdown(HANDLE handle, int how) {
    DH *h = handle;
    logline("WinDivertShutdown layer=%d how=%d", h->layer, how);
    InterlockedExchange(&h->closed, 1);
    return TRUE;
}

__declspec(dllexport) BOOL WinDivertClose(HANDLE handle) {
    DH *h = handle;
    logline("WinDivertClose layer=%d", h->layer);
    InterlockedExchange(&h->closed, 1);
    return TRUE;
}

__declspec(dllexport) BOOL WinDivertSetParam(HANDLE handle, int param, UINT64 value) {
    (void)handle;
    logline("WinDivertSetParam param=%d value=%llu", param, (unsigned long long)value);
    return TRUE;
}

__declspec(dllexport) BOOL WinDivertHelperCalcChecksums(void *packet, UINT len, void *addr, UINT64 flags) {
    (void)packet; (void)addr;
    logline("WinDivertHelperCalcChecksums len=%u flags=%llu", len, (unsigned long long)flags);
    return TRUE;
}
