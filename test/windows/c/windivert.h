/*
 * WinDivert 2.2 user-mode ABI, written for switchyard's layout test from the WinDivert documentation
 * (https://reqrypt.org/windivert-doc.html, sections "WINDIVERT_ADDRESS" and "WinDivertOpen").
 * Only the types and constants switchyard's koffi bindings use; not a copy of WinDivert's header.
 */
#ifndef SWITCHYARD_TEST_WINDIVERT_H
#define SWITCHYARD_TEST_WINDIVERT_H
#include <stdint.h>

typedef enum {
    WINDIVERT_LAYER_NETWORK = 0,
    WINDIVERT_LAYER_NETWORK_FORWARD = 1,
    WINDIVERT_LAYER_FLOW = 2,
    WINDIVERT_LAYER_SOCKET = 3,
    WINDIVERT_LAYER_REFLECT = 4
} WINDIVERT_LAYER;

typedef struct {
    uint32_t IfIdx;
    uint32_t SubIfIdx;
} WINDIVERT_DATA_NETWORK;

typedef struct {
    uint64_t EndpointId;
    uint64_t ParentEndpointId;
    uint32_t ProcessId;
    uint32_t LocalAddr[4];
    uint32_t RemoteAddr[4];
    uint16_t LocalPort;
    uint16_t RemotePort;
    uint8_t  Protocol;
} WINDIVERT_DATA_FLOW;

typedef WINDIVERT_DATA_FLOW WINDIVERT_DATA_SOCKET;

typedef struct {
    int64_t  Timestamp;
    uint32_t ProcessId;
    WINDIVERT_LAYER Layer;
    uint64_t Flags;
    int16_t  Priority;
} WINDIVERT_DATA_REFLECT;

typedef struct {
    int64_t  Timestamp;
    uint32_t Layer:8;
    uint32_t Event:8;
    uint32_t Sniffed:1;
    uint32_t Outbound:1;
    uint32_t Loopback:1;
    uint32_t Impostor:1;
    uint32_t IPv6:1;
    uint32_t IPChecksum:1;
    uint32_t TCPChecksum:1;
    uint32_t UDPChecksum:1;
    uint32_t Reserved1:8;
    uint32_t Reserved2;
    union {
        WINDIVERT_DATA_NETWORK Network;
        WINDIVERT_DATA_FLOW    Flow;
        WINDIVERT_DATA_SOCKET  Socket;
        WINDIVERT_DATA_REFLECT Reflect;
        uint8_t Reserved3[64];
    };
} WINDIVERT_ADDRESS;

#define WINDIVERT_FLAG_SNIFF      0x0001
#define WINDIVERT_FLAG_DROP       0x0002
#define WINDIVERT_FLAG_RECV_ONLY  0x0004
#define WINDIVERT_FLAG_SEND_ONLY  0x0008
#define WINDIVERT_FLAG_NO_INSTALL 0x0010

#define WINDIVERT_EVENT_NETWORK_PACKET 0
#define WINDIVERT_EVENT_SOCKET_CONNECT 4
#define WINDIVERT_EVENT_SOCKET_CLOSE   7

#endif
