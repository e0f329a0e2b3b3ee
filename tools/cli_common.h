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
/* UPnP-IGD error codes by name; "UNKNOWN" for others. */
const char *cli_upnp_result_name(int result);
/* A gateway result code by the name its protocol gives it. */
const char *cli_gateway_result_name(portmap_backend_t backend, int result);
void cli_json_string(FILE *f, const char *s);
/* One key of a JSON object: '{' before the first, ',' before the others. */
void cli_json_key(FILE *f, int *first, const char *key);
void cli_json_num(FILE *f, int *first, const char *key, long long value);
/* At most size octets of s, up to its NUL, control characters as '?'. */
void cli_put_sanitized(FILE *f, const char *s, size_t size);
/* The one line for a portmap_client_new() failure st (errno saved_errno),
 * on stderr; gateway is the --gateway given, or NULL. */
void cli_report_client_error(const char *prog, portmap_status_t st, int saved_errno,
                             const char *gateway);
/* --backend: "auto"/"all" (0) or a comma list of pcp, natpmp, upnp. 0 or
 * -1 (the error kept in err). */
int cli_parse_backends(const char *s, unsigned *out, parse_error_t *err);

/* ---- the command line ---- */

typedef struct cli_option {
  const char *name; /* without the leading "--" */
  int id;           /* the tool's own option number */
  int has_value;
  unsigned commands; /* the tool's own use (portmap: where the option applies) */
} cli_option_t;

typedef struct cli_args {
  int argc;
  char **argv;
  int i; /* the word read last; start at 0 */
  int only_positional;
  int digits_are_words; /* "-1" is a (bad) positional word, not an option */
  const cli_option_t *defs;
  size_t n_defs;
} cli_args_t;

typedef enum cli_arg_kind {
  CLI_ARG_END,        /* no more words */
  CLI_ARG_POSITIONAL, /* *word */
  CLI_ARG_OPTION,     /* *def, with *value when it has one */
  CLI_ARG_HELP,       /* -h */
  CLI_ARG_SKIP        /* "--", or a bad option (the error kept in err) */
} cli_arg_kind_t;

/*
 * The next word of the command line. Options are "--name", "--name=value"
 * and "--name value"; everything after "--", a lone "-" and a word not
 * starting with '-' are positional. Unknown options, a missing value and a
 * value given to an option that takes none are usage errors, kept in err.
 */
cli_arg_kind_t cli_next_arg(cli_args_t *a, const char **word, const cli_option_t **def,
                            const char **value, parse_error_t *err);

#endif
