/* SPDX-License-Identifier: MIT */
/*
 * A tool's client: its configuration from the common options, its creation
 * (a failure explained in one line), and its diagnostics on stderr: the
 * library's log, the packet trace and the counters. Public API only.
 */
#include "cli_client.h"

#include "cli_output.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t cli_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* "PROG: " or "PROG: +N ms " before every diagnostic line. */
static void diag_prefix(const cli_diag_t *d) {
  if (d->timestamps) {
    fprintf(stderr, "%s: +%llu ms ", d->prog, (unsigned long long)(cli_now_ms() - d->start_ms));
  } else {
    fprintf(stderr, "%s: ", d->prog);
  }
}

/* Network text (a device name, a log line quoting a packet) printed raw could drive the terminal.
 */
static void log_to_stderr(portmap_log_level_t level, const char *msg, void *user) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  const char *name = (unsigned)level < sizeof names / sizeof names[0] ? names[level] : "log";
  const cli_diag_t *d = user;
  /* Callbacks may come from a worker thread: keep each message in one piece. */
  flockfile(stderr);
  diag_prefix(d);
  fprintf(stderr, "[%s] ", name);
  if (d->sanitize) {
    cli_put_sanitized(stderr, msg, SIZE_MAX);
  } else {
    fputs(msg, stderr);
  }
  fputc('\n', stderr);
  funlockfile(stderr);
}

/* One datagram: a header line, then offset, 16 octets in hex and the same as ASCII. */
static void trace_to_stderr(int sent, const char *peer, uint16_t port, const uint8_t *data,
                            size_t len, void *user) {
  static const char digits[] = "0123456789abcdef";
  const cli_diag_t *d = user;
  size_t off;

  flockfile(stderr);
  diag_prefix(d);
  fprintf(stderr, "[trace] %s %s port %u, %zu octets\n", sent ? "sent to" : "received from",
          peer != NULL ? peer : "?", (unsigned)port, len);
  for (off = 0; off < len; off += 16) {
    char line[80];
    size_t n = len - off < 16 ? len - off : 16;
    size_t i, k = 0;
    k += (size_t)snprintf(line, sizeof line, "  %04zx  ", off);
    for (i = 0; i < 16; i++) {
      if (i < n) {
        line[k++] = digits[data[off + i] >> 4];
        line[k++] = digits[data[off + i] & 0x0f];
      } else {
        line[k++] = ' ';
        line[k++] = ' ';
      }
      line[k++] = ' ';
      if (i == 7) {
        line[k++] = ' ';
      }
    }
    line[k++] = ' ';
    line[k++] = '|';
    for (i = 0; i < n; i++) {
      uint8_t c = data[off + i];
      line[k++] = c >= 0x20 && c < 0x7f ? (char)c : '.';
    }
    line[k++] = '|';
    line[k] = '\0';
    fprintf(stderr, "%s\n", line);
  }
  funlockfile(stderr);
}

void cli_config_init(portmap_config_t *cfg, const cli_common_opts_t *c, cli_diag_t *diag) {
  portmap_config_init(cfg);
  cfg->gateway = c->gateway;
  cfg->backends = c->backends;
  if (c->server_port != 0) {
    cfg->server_port = c->server_port;
  }
  if (diag != NULL) {
    cfg->log_cb = log_to_stderr;
    cfg->log_user = diag;
    cfg->log_level = PORTMAP_LOG_DEBUG;
  }
}

void cli_config_trace(portmap_config_t *cfg, cli_diag_t *diag) {
  cfg->trace_cb = trace_to_stderr;
  cfg->trace_user = diag;
}

portmap_status_t cli_client_new(const char *prog, const portmap_config_t *cfg, const char *gateway,
                                portmap_client_t **client) {
  portmap_status_t st;
  int saved_errno;

  errno = 0;
  st = portmap_client_new(cfg, client);
  saved_errno = errno;
  if (st == PORTMAP_OK) {
    return st;
  }
  *client = NULL;
  switch (st) {
  case PORTMAP_ERR_ADDRESS:
    fprintf(stderr, "%s: cannot use the gateway address %s: %s\n", prog,
            gateway != NULL ? gateway : "(default router)", portmap_strerror(st));
    break;
  case PORTMAP_ERR_SYSTEM:
    fprintf(stderr, "%s: cannot open the client's sockets: %s\n", prog,
            saved_errno != 0 ? strerror(saved_errno) : portmap_strerror(st));
    break;
  default:
    fprintf(stderr, "%s: cannot create the client: %s\n", prog, portmap_strerror(st));
    break;
  }
  return st;
}

void cli_print_stats(const cli_diag_t *diag, portmap_client_t *client) {
  portmap_stats_t s;
  if (client == NULL || portmap_client_stats(client, &s) != PORTMAP_OK) {
    return;
  }
  diag_prefix(diag);
  fprintf(stderr,
          "[debug] sent %llu (%llu retransmissions), received %llu; dropped: %llu malformed, "
          "%llu spoofed, %llu unmatched; %llu epoch resets\n",
          (unsigned long long)s.sent, (unsigned long long)s.retransmissions,
          (unsigned long long)s.received, (unsigned long long)s.malformed,
          (unsigned long long)s.spoofed, (unsigned long long)s.unmatched,
          (unsigned long long)s.epoch_invalid);
}
