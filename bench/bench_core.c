/* SPDX-License-Identifier: MIT */
/*
 * Core benchmarks: the scheduler's cost per operation at scale, and the
 * memory one mapping costs: asked for (a window of requests in flight, the
 * rest waiting their turn), and established (granted by a responder on
 * loopback, renewal and expiry timers armed). Prints figures; asserts
 * nothing (speed and memory goals live here, not in timed tests).
 *
 *   cmake -S . -B build -DPORTMAP_BUILD_BENCH=ON && cmake --build build
 *   build/bench/bench_core [N]
 * For counts that do not depend on the machine's load:
 *   valgrind --tool=callgrind build/bench/bench_core 100000
 */
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <portmap/portmap.h>

#include "pcp/wire.h"
#include "util/sched.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t xorshift(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static size_t fired;
static void on_fire(portmap_timer_t *t, uint64_t now) {
  (void)t;
  (void)now;
  fired++;
}

static void bench_sched(size_t n) {
  portmap_sched_t s;
  portmap_sched_init(&s);
  portmap_timer_t *timers = calloc(n, sizeof *timers);
  for (size_t i = 0; i < n; i++)
    portmap_timer_init(&timers[i], on_fire, NULL);
  double t0 = now_s();
  for (size_t i = 0; i < n; i++)
    portmap_sched_push(&s, &timers[i], 1000 + xorshift() % 1000000);
  double t1 = now_s();
  for (size_t i = 0; i < n; i++) /* every renewal moves its timer */
    portmap_sched_push(&s, &timers[i], 1000 + xorshift() % 1000000);
  double t2 = now_s();
  for (size_t i = 0; i < n; i += 2)
    portmap_sched_cancel(&s, &timers[i]);
  double t3 = now_s();
  fired = 0;
  portmap_sched_run(&s, UINT64_MAX - 1);
  double t4 = now_s();
  printf("scheduler, %zu timers:\n", n);
  printf("  push        %8.1f ns/op\n", (t1 - t0) / (double)n * 1e9);
  printf("  reschedule  %8.1f ns/op\n", (t2 - t1) / (double)n * 1e9);
  printf("  cancel      %8.1f ns/op\n", (t3 - t2) / (double)(n / 2) * 1e9);
  printf("  pop+fire    %8.1f ns/op (%zu fired)\n", (t4 - t3) / (double)fired * 1e9, fired);
  portmap_sched_fini(&s);
  free(timers);
}

static uint64_t fake_clock(void *u) {
  (void)u;
  return 1000;
}

static void count_cb(portmap_mapping_t *m, portmap_event_t e, const portmap_info_t *i, void *u) {
  (void)m;
  (void)i;
  if (e == PORTMAP_EVENT_MAPPED)
    (*(size_t *)u)++;
}

/* Grant every PCP request waiting on the server socket (lifetime 1 h). */
static void answer_all(int fd) {
  for (;;) {
    uint8_t buf[PCP_MAX_PACKET];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t len = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
    if (len < 0)
      return;
    pcp_msg_t m;
    pcp_msg_init(&m);
    if (pcp_decode_request(buf, (size_t)len, &m) != PCP_WIRE_OK || m.opcode != PCP_OP_MAP)
      continue;
    m.result = PCP_SUCCESS;
    m.epoch = 1000;
    m.lifetime = m.lifetime == 0 ? 0 : 3600;
    m.external_port = m.internal_port;
    m.n_filters = 0;
    m.description_len = 0;
    size_t out = 0;
    if (pcp_encode_response(&m, buf, sizeof buf, &out) == PCP_WIRE_OK)
      sendto(fd, buf, out, 0, (struct sockaddr *)&from, fl);
  }
}

/* Memory per PCP mapping: first with the requests going to a loopback
 * socket that nobody reads (every mapping asked for and unanswered: a
 * window's worth in flight, the rest waiting), then granted. */
static void bench_memory(size_t n) {
  int sink = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(sink, (struct sockaddr *)&sa, sizeof sa);
  socklen_t sl = sizeof sa;
  getsockname(sink, (struct sockaddr *)&sa, &sl);
  portmap_config_t cfg;
  portmap_config_init(&cfg);
  cfg.gateway = "127.0.0.1";
  cfg.backends = PORTMAP_BACKEND_PCP;
  cfg.server_port = ntohs(sa.sin_port);
  cfg.announce_port = -1;
  cfg.clock_cb = fake_clock;
  cfg.destroy_timeout_ms = 0;
  portmap_client_t *c = NULL;
  if (portmap_client_new(&cfg, &c) != PORTMAP_OK) {
    printf("memory: cannot create a client\n");
    close(sink);
    return;
  }
  struct mallinfo2 before = mallinfo2();
  portmap_request_t req;
  portmap_request_init(&req);
  size_t mapped = 0;
  for (size_t i = 0; i < n; i++) {
    req.internal_port = (uint16_t)(1 + i % 65535);
    req.protocol = i < 65535 ? PORTMAP_PROTO_TCP : PORTMAP_PROTO_UDP;
    portmap_map(c, &req, count_cb, &mapped, NULL);
  }
  struct mallinfo2 after = mallinfo2();
  printf("memory, %zu PCP mappings in flight: %.0f bytes per mapping (heap)\n", n,
         (double)(after.uordblks - before.uordblks) / (double)n);
  /* the answers come: a window at a time */
  for (size_t rounds = 0; mapped < n && rounds < 4 * n; rounds++) {
    answer_all(sink);
    portmap_process(c);
  }
  after = mallinfo2();
  printf("memory, %zu PCP mappings established: %.0f bytes per mapping (heap)%s\n", n,
         (double)(after.uordblks - before.uordblks) / (double)n,
         mapped < n ? " (not all were granted)" : "");
  portmap_client_free(c);
  close(sink);
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 100000;
  if (n < 2)
    n = 2;
  bench_sched(n);
  bench_memory(n > 20000 ? 20000 : n);
  return 0;
}
