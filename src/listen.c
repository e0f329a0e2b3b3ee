/* SPDX-License-Identifier: MIT */
/*
 * The shared 5350 listener (checklist B5, N6): PCP ANNOUNCE and mapping
 * updates and NAT-PMP announcements, handed to the backend whose version
 * octet they carry.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "platform/platform.h"
#include "util/netutil.h"

/* B5: listen on 5350 for PCP ANNOUNCE and mapping updates and NAT-PMP
 * announcements (224.0.0.1 / ff02::1), shared with other clients on this
 * host (SO_REUSEADDR/SO_REUSEPORT). */
static int listener_open(portmap_client_t *c, int ipv6, uint16_t port) {
  int fd = portmap_plat_socket(ipv6, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (ipv6)
    (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  uint8_t any[16];
  portmap_addr_any(any, ipv6);
  struct sockaddr_storage ss;
  socklen_t sl = portmap_net_to_sockaddr(any, port, 0, &ss);
  if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
    portmap_log(c, PORTMAP_LOG_INFO, "cannot listen for announcements on port %u: %s", port,
                strerror(errno));
    close(fd);
    return -1;
  }
  if (ipv6) {
    struct ipv6_mreq mr;
    memset(&mr, 0, sizeof mr);
    mr.ipv6mr_multiaddr.s6_addr[0] = 0xff;
    mr.ipv6mr_multiaddr.s6_addr[1] = 0x02;
    mr.ipv6mr_multiaddr.s6_addr[15] = 0x01;
    mr.ipv6mr_interface = c->gateway6_scope;
    (void)setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mr, sizeof mr);
  } else {
    struct ip_mreq mr;
    memset(&mr, 0, sizeof mr);
    mr.imr_multiaddr.s_addr = htonl(0xE0000001u); /* 224.0.0.1 */
    mr.imr_interface.s_addr = htonl(INADDR_ANY);
    (void)setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr);
  }
  return fd;
}

/* Hand each datagram to the backend its version octet names: 2 is PCP,
 * 0 is NAT-PMP (RFC 6887 section 9). */
static void listener_read(portmap_client_t *c, int fd, uint64_t now) {
  for (int n = 0; n < 64; n++) {
    uint8_t buf[1104];
    uint8_t from[16];
    uint16_t port;
    size_t got;
    int from_ok;
    if (portmap_plat_recv(fd, 0, buf, sizeof buf, &got, from, &port, &from_ok) !=
        PORTMAP_PLAT_RECV_OK)
      break;
    int idx = got < 1 ? -1 : buf[0] == 2 ? 0 : buf[0] == 0 ? 1 : -1;
    if (!from_ok || idx < 0 || c->be_ops[idx] == NULL || c->be_ops[idx]->unsolicited == NULL) {
      c->stats.received++;
      portmap_trace(c, 0, from, port, buf, got);
      c->stats.malformed++;
      continue;
    }
    c->be_ops[idx]->unsolicited(c->be_state[idx], from, port, buf, got, now);
  }
}

void portmap_listen_open(portmap_client_t *c) {
  if (c->cfg.announce_port < 0)
    return;
  uint16_t port = c->cfg.announce_port == 0 ? 5350 : (uint16_t)c->cfg.announce_port;
  c->listen_fd[0] = listener_open(c, 0, port);
  if (c->have_gateway6)
    c->listen_fd[1] = listener_open(c, 1, port);
}

void portmap_listen_read(portmap_client_t *c, uint64_t now) {
  for (int i = 0; i < 2; i++)
    if (c->listen_fd[i] >= 0)
      listener_read(c, c->listen_fd[i], now);
}

void portmap_listen_close(portmap_client_t *c) {
  for (int i = 0; i < 2; i++) {
    if (c->listen_fd[i] >= 0)
      close(c->listen_fd[i]);
    c->listen_fd[i] = -1;
  }
}
