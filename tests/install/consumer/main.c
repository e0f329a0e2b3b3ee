/* SPDX-License-Identifier: MIT */
/* A program outside the tree, built against the installed library. */
#include <portmap/portmap.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  portmap_config_t cfg;
  portmap_config_init(&cfg);
  cfg.gateway = "127.0.0.1";
  cfg.backends = PORTMAP_BACKEND_PCP;
  cfg.announce_port = -1;
  portmap_client_t *c = NULL;
  if (portmap_client_new(&cfg, &c) != PORTMAP_OK)
    return 1;
  portmap_status_t st = portmap_client_free(c);
  printf("%s\n", portmap_strerror(st));
  return strcmp(portmap_strerror(PORTMAP_OK), "") == 0;
}
