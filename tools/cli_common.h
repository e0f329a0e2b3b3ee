/* Helpers shared by portmap and portmap-probe (tools/cli_common.c). */
#ifndef PORTMAP_TOOLS_CLI_COMMON_H
#define PORTMAP_TOOLS_CLI_COMMON_H

#include <stdint.h>
#include <stdio.h>

#include <portmap/portmap.h>

#define NONCE_LEN 12

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

/* A usage error: the first one found, reported after the whole command line was read. */
typedef struct parse_error {
  int set;
  char msg[320];
} parse_error_t;

void cli_set_error(parse_error_t *err, const char *fmt, ...) PRINTF_LIKE(2, 3);
int cli_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out);
int cli_ascii_ieq(const char *a, const char *b);
void cli_nonce_hex(const uint8_t nonce[NONCE_LEN], char out[2 * NONCE_LEN + 1]);
int cli_nonce_is_set(const uint8_t nonce[NONCE_LEN]);
uint64_t cli_now_ms(void);
const char *cli_natpmp_result_name(int result);
void cli_json_string(FILE *f, const char *s);

#endif
