/* SPDX-License-Identifier: MIT */
/*
 * The HTTP request of one UPnP-IGD SOAP action, built without I/O (see
 * soap.h). Every piece is bounded; nothing is written past cap.
 */
#include "upnp/soap.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct sbuf {
  char *p;
  size_t cap, len;
  int overflow;
} sbuf_t;

__attribute__((format(printf, 2, 3))) static void put(sbuf_t *b, const char *fmt, ...) {
  if (b->overflow)
    return;
  va_list ap;
  va_start(ap, fmt);
  size_t room = b->cap - b->len;
  int n = vsnprintf(b->p + b->len, room, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= room) {
    b->overflow = 1;
    return;
  }
  b->len += (size_t)n;
}

/* Text that goes inside a header or a tag name: no framing characters. */
static int clean(const char *s, int allow_empty) {
  if (s == NULL || (!allow_empty && s[0] == '\0'))
    return 0;
  return strpbrk(s, "\r\n<>\"") == NULL;
}

int portmap_soap_build(const char *host, unsigned port, const char *path, const char *user_agent,
                       const char *service, const char *action, const portmap_soap_arg_t *args,
                       size_t n_args, char *out, size_t cap, size_t *len) {
  if (out == NULL || len == NULL || !clean(host, 0) || port == 0 || port > 65535 ||
      !clean(path, 0) || !clean(user_agent, 0) || !clean(service, 0) || !clean(action, 0) ||
      (n_args > 0 && args == NULL) || strchr(path, ' ') != NULL || strchr(action, ' ') != NULL)
    return -1;
  for (size_t i = 0; i < n_args; i++)
    if (!clean(args[i].name, 0) || strpbrk(args[i].name, " &") != NULL ||
        (args[i].value != NULL && strchr(args[i].value, '<') != NULL))
      return -1;
  char body[PORTMAP_SOAP_BODY_MAX];
  sbuf_t b = {body, sizeof body, 0, 0};
  put(&b,
      "<?xml version=\"1.0\"?>\r\n"
      "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" "
      "s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\">"
      "<s:Body><u:%s xmlns:u=\"%s\">",
      action, service);
  for (size_t i = 0; i < n_args; i++)
    put(&b, "<%s>%s</%s>", args[i].name, args[i].value != NULL ? args[i].value : "", args[i].name);
  put(&b, "</u:%s></s:Body></s:Envelope>\r\n", action);
  if (b.overflow)
    return -1;
  char port_text[8] = "";
  if (port != 80)
    snprintf(port_text, sizeof port_text, ":%u", port);
  sbuf_t r = {out, cap, 0, 0};
  put(&r,
      "POST %s HTTP/1.1\r\n"
      "Host: %s%s\r\n"
      "User-Agent: %s\r\n"
      "Content-Length: %zu\r\n"
      "Content-Type: text/xml\r\n"
      "SOAPAction: \"%s#%s\"\r\n"
      "Connection: Close\r\n"
      "Cache-Control: no-cache\r\n"
      "Pragma: no-cache\r\n"
      "\r\n",
      path, host, port_text, user_agent, b.len, service, action);
  if (r.overflow || cap - r.len < b.len)
    return -1;
  memcpy(out + r.len, body, b.len);
  *len = r.len + b.len;
  return 0;
}
