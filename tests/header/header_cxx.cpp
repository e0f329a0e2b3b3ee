/* SPDX-License-Identifier: MIT */
// Compiled as C++ with -pedantic -Werror: the public header must pass.
#include <portmap/portmap.h>

int portmap_header_cxx_check();
int portmap_header_cxx_check() {
  portmap_config_t cfg;
  portmap_config_init(&cfg);
  return cfg.backends == 0 ? 0 : 1;
}
