/* SPDX-License-Identifier: MIT */
/* The command line of the tools: scanner, strict values, the options every tool shares. */
#ifndef PORTMAP_TOOLS_CLI_ARGS_H
#define PORTMAP_TOOLS_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include <portmap/portmap.h>

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

/* Exit statuses of both tools. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_REFUSED 1 /* the gateway refused, or nothing answered */
#define CLI_EXIT_USAGE 2   /* usage or system error */

#define CLI_MAX_LIFETIME 86400u

/* A usage error: the first one found, reported after the whole command line was read. */
typedef struct parse_error {
  int set;
  char msg[320];
} parse_error_t;

void cli_set_error(parse_error_t *err, const char *fmt, ...) PRINTF_LIKE(2, 3);
int cli_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out);
int cli_ascii_ieq(const char *a, const char *b);
/* --backend: "auto"/"all" (0) or a comma list of pcp, natpmp, upnp. 0 or
 * -1 (the error kept in err). */
int cli_parse_backends(const char *s, unsigned *out, parse_error_t *err);
/* --lifetime: 1-86400 seconds. 0 or -1 (the error kept in err). */
int cli_parse_lifetime(const char *value, uint32_t *out, parse_error_t *err);

/* What is wrong with a PORT[/tcp|/udp] word (cli_parse_target). */
typedef enum cli_target_error {
  CLI_TARGET_OK,
  CLI_TARGET_NO_PROTOCOL,  /* nothing after the '/' */
  CLI_TARGET_BAD_PROTOCOL, /* neither tcp nor udp: *bad_protocol */
  CLI_TARGET_NO_PORT,      /* nothing before the '/' */
  CLI_TARGET_LONG_PORT,    /* the port is too long to be one */
  CLI_TARGET_BAD_PORT      /* not 1-65535: port_text */
} cli_target_error_t;

/*
 * PORT[/tcp|/udp], the protocol case-insensitive, tcp by default. On an
 * error the tool words the message: *bad_protocol points into arg,
 * port_text holds the port's text.
 */
cli_target_error_t cli_parse_target(const char *arg, int *protocol, uint16_t *port,
                                    const char **bad_protocol, char port_text[16]);

/* ---- the command line ---- */

typedef struct cli_option {
  const char *name; /* without the leading "--" */
  int id;           /* a CLI_OPT_* below, or the tool's own number from CLI_OPT_TOOL on */
  int has_value;
  unsigned commands; /* the tool's own use (portmap: where the option applies) */
} cli_option_t;

/* The options both tools take alike; each tool numbers its own from CLI_OPT_TOOL on. */
enum cli_option_id {
  CLI_OPT_GATEWAY,
  CLI_OPT_BACKEND,
  CLI_OPT_PORT,
  CLI_OPT_JSON,
  CLI_OPT_VERBOSE,
  CLI_OPT_HELP,
  CLI_OPT_VERSION,
  CLI_OPT_TOOL
};

typedef struct cli_common_opts {
  const char *gateway;
  unsigned backends;    /* 0 = all */
  uint16_t server_port; /* 0 = library default */
  int json;
  int verbose;
  int help;
  int version;
} cli_common_opts_t;

/* Apply option id if it is one of the CLI_OPT_* above: 1, else 0. */
int cli_apply_common_option(cli_common_opts_t *c, int id, const char *value, parse_error_t *err);

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

/*
 * After the command line was read: print the help, the version or the usage
 * error (in that order of precedence) and return the exit status, or -1
 * when the tool is to run.
 */
int cli_early_exit(const char *prog, const cli_common_opts_t *c, const parse_error_t *err,
                   const char *help_text, const char *usage);

#endif
