/* SPDX-License-Identifier: MIT */
/*
 * The one-packet reference client for bench/lab_timing.sh: the least a PCP
 * mapping can cost. It sends ONE MAP request (RFC 6887 sections 7.1 and
 * 11.1, built by hand, no library), waits a bounded time for the answer,
 * checks its nonce, opcode, protocol, port and result, prints the mapping
 * and exits 0. Nothing is retransmitted, nothing probed, nothing renewed.
 *
 *   oneshot_map [--delete --nonce HEX] [--udp] [--server-port P] [--timeout-ms T]
 *               GATEWAY PORT [LIFETIME]
 * Exit: 0 success, 1 refused or no answer, 2 usage or system error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQ_LEN 60 /* 24-octet header + 36-octet MAP payload, no options */

static int usage(void) {
  fprintf(stderr, "usage: oneshot_map [--delete --nonce HEX] [--udp] [--server-port P] "
                  "[--timeout-ms T] GATEWAY PORT [LIFETIME]\n");
  return 2;
}

static int fail(const char *what, int status) {
  perror(what);
  return status;
}

static long number(const char *s, long lo, long hi) {
  char *end;
  long v = strtol(s, &end, 10);
  return end == s || *end != '\0' || v < lo || v > hi ? -1 : v;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int main(int argc, char **argv) {
  int del = 0, proto = 6, have_nonce = 0;
  long server_port = 5351, timeout_ms = 1000, lifetime = 120;
  uint8_t nonce[12];
  const char *pos[3];
  int npos = 0;
  for (int i = 1; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : "";
    if (strcmp(argv[i], "--delete") == 0) {
      del = 1;
    } else if (strcmp(argv[i], "--udp") == 0) {
      proto = 17;
    } else if (strcmp(argv[i], "--nonce") == 0 && strlen(v) == 24) {
      for (int k = 0; k < 12; k++) {
        unsigned b;
        if (sscanf(v + 2 * k, "%2x", &b) != 1)
          return usage();
        nonce[k] = (uint8_t)b;
      }
      have_nonce = 1;
      i++;
    } else if (strcmp(argv[i], "--server-port") == 0 && (server_port = number(v, 1, 65535)) > 0) {
      i++;
    } else if (strcmp(argv[i], "--timeout-ms") == 0 && (timeout_ms = number(v, 1, 60000)) > 0) {
      i++;
    } else if (argv[i][0] != '-' && npos < 3) {
      pos[npos++] = argv[i];
    } else {
      return usage();
    }
  }
  long port = npos >= 2 ? number(pos[1], 1, 65535) : -1;
  if (npos == 3)
    lifetime = number(pos[2], 0, 86400);
  if (npos < 2 || port < 0 || lifetime < 0 || (del && !have_nonce))
    return usage();
  if (del)
    lifetime = 0; /* RFC 6887 section 15: a delete is a MAP with lifetime 0, same nonce */
  if (!have_nonce && getentropy(nonce, sizeof nonce) != 0)
    return fail("getentropy", 2);

  /* connect(): the kernel picks our address (the request must carry it,
   * section 7.1) and drops datagrams from anyone but the gateway's port */
  struct sockaddr_storage gw;
  memset(&gw, 0, sizeof gw);
  struct sockaddr_in *g4 = (struct sockaddr_in *)&gw;
  struct sockaddr_in6 *g6 = (struct sockaddr_in6 *)&gw;
  socklen_t gl;
  if (inet_pton(AF_INET, pos[0], &g4->sin_addr) == 1) {
    g4->sin_family = AF_INET;
    g4->sin_port = htons((uint16_t)server_port);
    gl = sizeof *g4;
  } else if (inet_pton(AF_INET6, pos[0], &g6->sin6_addr) == 1) {
    g6->sin6_family = AF_INET6;
    g6->sin6_port = htons((uint16_t)server_port);
    gl = sizeof *g6;
  } else {
    return usage();
  }
  int fd = socket(gw.ss_family, SOCK_DGRAM, 0);
  struct sockaddr_storage me;
  socklen_t ml = sizeof me;
  if (fd < 0 || connect(fd, (struct sockaddr *)&gw, gl) != 0 ||
      getsockname(fd, (struct sockaddr *)&me, &ml) != 0)
    return fail("socket", 2);

  uint8_t q[REQ_LEN], a[1100];
  memset(q, 0, sizeof q);
  q[0] = 2; /* version */
  q[1] = 1; /* R = 0 (request), opcode MAP */
  q[4] = (uint8_t)(lifetime >> 24);
  q[5] = (uint8_t)(lifetime >> 16);
  q[6] = (uint8_t)(lifetime >> 8);
  q[7] = (uint8_t)lifetime;
  if (me.ss_family == AF_INET) { /* client address: IPv4-mapped (section 5) */
    q[18] = q[19] = 0xff;
    memcpy(q + 20, &((struct sockaddr_in *)&me)->sin_addr, 4);
    q[54] = q[55] = 0xff; /* suggested external address ::ffff:0.0.0.0 (section 11.1) */
  } else {
    memcpy(q + 8, &((struct sockaddr_in6 *)&me)->sin6_addr, 16);
  }
  memcpy(q + 24, nonce, 12);
  q[36] = (uint8_t)proto;
  q[40] = (uint8_t)(port >> 8); /* internal port */
  q[41] = (uint8_t)port;
  if (!del) {
    q[42] = q[40]; /* suggested external port: the same */
    q[43] = q[41];
  }

  if (send(fd, q, sizeof q, 0) != (ssize_t)sizeof q)
    return fail("send", 1);
  uint64_t end = now_ms() + (uint64_t)timeout_ms;
  for (uint64_t t = now_ms(); t < end; t = now_ms()) {
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    if (poll(&p, 1, (int)(end - t)) <= 0)
      continue;
    ssize_t n = recv(fd, a, sizeof a, 0);
    if (n < 0 && errno == ECONNREFUSED) {
      fprintf(stderr, "oneshot_map: %s port %ld closed\n", pos[0], server_port);
      return 1;
    }
    /* section 8.3: a response to this request, or something to ignore */
    if (n < REQ_LEN || a[0] != 2 || a[1] != 0x81 || memcmp(a + 24, nonce, 12) != 0 ||
        a[36] != proto || a[40] != q[40] || a[41] != q[41])
      continue;
    if (a[3] != 0) {
      fprintf(stderr, "oneshot_map: refused, PCP result %u\n", a[3]);
      return 1;
    }
    uint32_t life = (uint32_t)a[4] << 24 | (uint32_t)a[5] << 16 | (uint32_t)a[6] << 8 | a[7];
    char ext[INET6_ADDRSTRLEN], hex[25];
    static const uint8_t v4prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a + 44, v4prefix, 12) == 0)
      inet_ntop(AF_INET, a + 56, ext, sizeof ext);
    else
      inet_ntop(AF_INET6, a + 44, ext, sizeof ext);
    for (int k = 0; k < 12; k++)
      snprintf(hex + 2 * k, 3, "%02x", nonce[k]);
    if (del)
      printf("deleted %ld/%s\n", port, proto == 6 ? "tcp" : "udp");
    else
      printf("mapped %ld/%s external %s:%u lifetime %u nonce %s\n", port,
             proto == 6 ? "tcp" : "udp", ext, (unsigned)(a[42] << 8 | a[43]), life, hex);
    return 0;
  }
  fprintf(stderr, "oneshot_map: no answer from %s within %ld ms\n", pos[0], timeout_ms);
  return 1;
}
