/* SPDX-License-Identifier: MIT */
/* What the tools print: JSON values, sanitized text, names of protocols, results and nonces. */
#ifndef PORTMAP_TOOLS_CLI_OUTPUT_H
#define PORTMAP_TOOLS_CLI_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <portmap/portmap.h>

#define NONCE_LEN 12

/* The PCP/NAT-PMP server port (RFC 6887 section 19.1). */
#define CLI_DEFAULT_SERVER_PORT 5351u

void cli_nonce_hex(const uint8_t nonce[NONCE_LEN], char out[2 * NONCE_LEN + 1]);
int cli_nonce_is_set(const uint8_t nonce[NONCE_LEN]);
const char *cli_natpmp_result_name(int result);
/* UPnP-IGD error codes by name; "UNKNOWN" for others. */
const char *cli_upnp_result_name(int result);
/* A gateway result code by the name its protocol gives it. */
const char *cli_gateway_result_name(portmap_backend_t backend, int result);
/* "tcp", "udp", or "proto N" (in buf). */
const char *cli_proto_name(int protocol, char *buf, size_t len);
/* --port as given, else the default server port. */
unsigned cli_server_port(uint16_t configured);

/* A fixed-size string from the library, or NULL when empty or not terminated. */
const char *cli_field(const char *s, size_t size);
#define CLI_FIELD(s) cli_field((s), sizeof(s))
/* A mapping's external address as text, or NULL when not known. */
const char *cli_info_external(const portmap_info_t *info, char *buf, size_t len);

/* A JSON string, always valid UTF-8: ill-formed sequences as U+FFFD, C0, DEL
 * and C1 controls as \u00XX. */
void cli_json_string(FILE *f, const char *s);
/* One key of a JSON object: '{' before the first, ',' before the others. */
void cli_json_key(FILE *f, int *first, const char *key);
void cli_json_num(FILE *f, int *first, const char *key, long long value);
/* The value, or null when have is 0. */
void cli_json_num_or_null(FILE *f, int *first, const char *key, int have, long long value);
/* The string, or null when value is NULL. */
void cli_json_str(FILE *f, int *first, const char *key, const char *value);
void cli_json_bool(FILE *f, int *first, const char *key, int value);
/* At most size octets of s, up to its NUL: ill-formed UTF-8 and C0, DEL and
 * C1 controls as '?'. */
void cli_put_sanitized(FILE *f, const char *s, size_t size);

#endif
