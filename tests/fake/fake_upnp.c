/* SPDX-License-Identifier: MIT */
/*
 * The fake UPnP IGD (see fake_upnp.h): SSDP on UDP 127.0.0.1, HTTP on TCP
 * 127.0.0.1, one thread, one lock.
 */
#include "fake_upnp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FAKE_MAX_SERVICES 3
#define FAKE_MAX_CONFLICTS 16
#define FAKE_MAX_TARGETS 64
#define FAKE_IN_MAX 16384

/* ---------- recorded root descriptions ---------- */

/* miniupnpd 2.3 on OpenWrt, IGDv1 */
static const char DESC_IGD1[] =
    "<?xml version=\"1.0\"?>\r\n"
    "<root xmlns=\"urn:schemas-upnp-org:device-1-0\"><specVersion><major>1</major><minor>0</minor>"
    "</specVersion><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1"
    "</deviceType><friendlyName>OpenWrt router</friendlyName><manufacturer>OpenWrt</manufacturer>"
    "<manufacturerURL>https://openwrt.org/</manufacturerURL><modelDescription>OpenWrt router"
    "</modelDescription><modelName>OpenWrt router</modelName><modelNumber>1</modelNumber>"
    "<modelURL>https://openwrt.org/</modelURL><serialNumber>00000000</serialNumber>"
    "<UDN>uuid:9a1f7e2c-0000-4000-8000-00000000a001</UDN><serviceList><service><serviceType>"
    "urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><serviceId>"
    "urn:upnp-org:serviceId:L3Forwarding1</serviceId><SCPDURL>/L3F.xml</SCPDURL><controlURL>"
    "/ctl/L3F</controlURL><eventSubURL>/evt/L3F</eventSubURL></service></serviceList><deviceList>"
    "<device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType><friendlyName>"
    "WANDevice</friendlyName><manufacturer>MiniUPnP</manufacturer><manufacturerURL>"
    "http://miniupnp.free.fr/</manufacturerURL><modelDescription>WAN Device</modelDescription>"
    "<modelName>WAN Device</modelName><modelNumber>20230101</modelNumber><modelURL>"
    "http://miniupnp.free.fr/</modelURL><serialNumber>00000000</serialNumber><UDN>"
    "uuid:9a1f7e2c-0000-4000-8000-00000000a002</UDN><UPC>000000000000</UPC><serviceList><service>"
    "<serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType>"
    "<serviceId>urn:upnp-org:serviceId:WANCommonIFC1</serviceId><SCPDURL>/WANCfg.xml</SCPDURL>"
    "<controlURL>/ctl/CmnIfCfg</controlURL><eventSubURL>/evt/CmnIfCfg</eventSubURL></service>"
    "</serviceList><deviceList><device><deviceType>"
    "urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType><friendlyName>"
    "WANConnectionDevice</friendlyName><manufacturer>MiniUPnP</manufacturer><manufacturerURL>"
    "http://miniupnp.free.fr/</manufacturerURL><modelDescription>MiniUPnP daemon"
    "</modelDescription><modelName>MiniUPnPd</modelName><modelNumber>20230101</modelNumber>"
    "<modelURL>http://miniupnp.free.fr/</modelURL><serialNumber>00000000</serialNumber><UDN>"
    "uuid:9a1f7e2c-0000-4000-8000-00000000a003</UDN><UPC>000000000000</UPC><serviceList>"
    "<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>"
    "<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><SCPDURL>/WANIPCn.xml</SCPDURL>"
    "<controlURL>/ctl/IPConn</controlURL><eventSubURL>/evt/IPConn</eventSubURL></service>"
    "</serviceList></device></deviceList></device></deviceList><presentationURL>"
    "http://127.0.0.1/</presentationURL></device></root>\r\n";

/* IGDv2 with URLBase, a comment, a namespace prefix and IPv6 firewall control */
static const char DESC_IGD2[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n"
    "<!-- IGD:2 as a recent miniupnpd writes it, with URLBase -->\r\n"
    "<root xmlns=\"urn:schemas-upnp-org:device-1-0\" configId=\"1337\">\r\n"
    " <specVersion><major>1</major><minor>1</minor></specVersion>\r\n"
    " <URLBase>http://127.0.0.1:%PORT%/</URLBase>\r\n"
    " <device>\r\n"
    "  <deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType>\r\n"
    "  <friendlyName>Gateway &amp; Firewall</friendlyName>\r\n"
    "  <manufacturer>Example Networks</manufacturer>\r\n"
    "  <modelName>EX-2000</modelName>\r\n"
    "  <UDN>uuid:5c0ffee0-0000-4000-8000-00000000b001</UDN>\r\n"
    "  <deviceList>\r\n"
    "   <device>\r\n"
    "    <deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType>\r\n"
    "    <friendlyName>WANDevice</friendlyName>\r\n"
    "    <UDN>uuid:5c0ffee0-0000-4000-8000-00000000b002</UDN>\r\n"
    "    <serviceList>\r\n"
    "     <service>\r\n"
    "      <serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType>\r\n"
    "      <serviceId>urn:upnp-org:serviceId:WANCommonIFC1</serviceId>\r\n"
    "      <SCPDURL>/WANCfg.xml</SCPDURL><controlURL>/ctl/CmnIfCfg</controlURL>\r\n"
    "      <eventSubURL>/evt/CmnIfCfg</eventSubURL>\r\n"
    "     </service>\r\n"
    "    </serviceList>\r\n"
    "    <deviceList>\r\n"
    "     <device>\r\n"
    "      <deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:2</deviceType>\r\n"
    "      <friendlyName>WANConnectionDevice</friendlyName>\r\n"
    "      <UDN>uuid:5c0ffee0-0000-4000-8000-00000000b003</UDN>\r\n"
    "      <serviceList>\r\n"
    "       <service>\r\n"
    "        <serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType>\r\n"
    "        <serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>\r\n"
    "        <SCPDURL>/WANIPCn.xml</SCPDURL>\r\n"
    "        <controlURL>ctl/IPConn</controlURL>\r\n"
    "        <eventSubURL>/evt/IPConn</eventSubURL>\r\n"
    "       </service>\r\n"
    "       <service>\r\n"
    "        <serviceType>urn:schemas-upnp-org:service:WANIPv6FirewallControl:1</serviceType>\r\n"
    "        <serviceId>urn:upnp-org:serviceId:WANIPv6Firewall1</serviceId>\r\n"
    "        <SCPDURL>/WANIP6FC.xml</SCPDURL><controlURL>/ctl/IP6FCtl</controlURL>\r\n"
    "        <eventSubURL>/evt/IP6FCtl</eventSubURL>\r\n"
    "       </service>\r\n"
    "      </serviceList>\r\n"
    "     </device>\r\n"
    "    </deviceList>\r\n"
    "   </device>\r\n"
    "  </deviceList>\r\n"
    "  <presentationURL>http://127.0.0.1/</presentationURL>\r\n"
    " </device>\r\n"
    "</root>\r\n";

/* Draytek Vigor style: WANPPPConnection:1 only (Q6) */
static const char DESC_PPP[] =
    "<?xml version=\"1.0\"?>\n"
    "<root xmlns=\"urn:schemas-upnp-org:device-1-0\">\n"
    "<specVersion><major>1</major><minor>0</minor></specVersion>\n"
    "<device>\n"
    "<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>\n"
    "<friendlyName>Vigor Router</friendlyName>\n"
    "<manufacturer>DrayTek Corp.</manufacturer>\n"
    "<modelName>Vigor2760</modelName>\n"
    "<UDN>uuid:11223344-5566-7788-99aa-bbccddee0001</UDN>\n"
    "<deviceList><device>\n"
    "<deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>\n"
    "<friendlyName>WANDevice</friendlyName>\n"
    "<UDN>uuid:11223344-5566-7788-99aa-bbccddee0002</UDN>\n"
    "<deviceList><device>\n"
    "<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>\n"
    "<friendlyName>WANConnectionDevice</friendlyName>\n"
    "<UDN>uuid:11223344-5566-7788-99aa-bbccddee0003</UDN>\n"
    "<serviceList><service>\n"
    "<serviceType>urn:schemas-upnp-org:service:WANPPPConnection:1</serviceType>\n"
    "<serviceId>urn:upnp-org:serviceId:WANPPPConn1</serviceId>\n"
    "<SCPDURL>/WANPPPCn.xml</SCPDURL>\n"
    "<controlURL>/ctl/PPPConn</controlURL>\n"
    "<eventSubURL>/evt/PPPConn</eventSubURL>\n"
    "</service></serviceList>\n"
    "</device></deviceList>\n"
    "</device></deviceList>\n"
    "</device>\n"
    "</root>\n";

/* Huawei HG531-like TR-064 box: only urn:dslforum-org: (Q28) */
static const char DESC_DSLF[] =
    "<?xml version=\"1.0\"?>"
    "<root xmlns=\"urn:dslforum-org:device-1-0\"><specVersion><major>1</major><minor>0</minor>"
    "</specVersion><device><deviceType>urn:dslforum-org:device:InternetGatewayDevice:1"
    "</deviceType><friendlyName>HG531 V1</friendlyName><manufacturer>Huawei Technologies Co., "
    "Ltd.</manufacturer><modelDescription>ADSL2+ &amp; WLAN gateway</modelDescription>"
    "<modelName>HG531 V1</modelName><UDN>uuid:00e0fc37-2525-2828-2500-0ca2f48f6f2a</UDN>"
    "<serviceList><service><serviceType>urn:dslforum-org:service:DeviceInfo:1</serviceType>"
    "<serviceId>urn:dslforum-org:serviceId:DeviceInfo1</serviceId><controlURL>"
    "/upnp/control/DeviceInfo1</controlURL><eventSubURL>/upnp/event/DeviceInfo1</eventSubURL>"
    "<SCPDURL>/deviceinfoSCPD.xml</SCPDURL></service></serviceList><deviceList><device>"
    "<deviceType>urn:dslforum-org:device:WANDevice:1</deviceType><friendlyName>WANDevice"
    "</friendlyName><UDN>uuid:00e0fc37-2525-2828-2500-0ca2f48f6f2b</UDN><serviceList><service>"
    "<serviceType>urn:dslforum-org:service:WANCommonInterfaceConfig:1</serviceType><serviceId>"
    "urn:dslforum-org:serviceId:WANCommonInterfaceConfig1</serviceId><controlURL>"
    "/upnp/control/WANCommonIFC1</controlURL><eventSubURL>/upnp/event/WANCommonIFC1"
    "</eventSubURL><SCPDURL>/wancommonifconfigSCPD.xml</SCPDURL></service><service>"
    "<serviceType>urn:dslforum-org:service:WANDSLInterfaceConfig:1</serviceType><serviceId>"
    "urn:dslforum-org:serviceId:WANDSLInterfaceConfig1</serviceId><controlURL>"
    "/upnp/control/WANDSLIfCfg1</controlURL><eventSubURL>/upnp/event/WANDSLIfCfg1"
    "</eventSubURL><SCPDURL>/wandslifconfigSCPD.xml</SCPDURL></service></serviceList>"
    "<deviceList><device><deviceType>urn:dslforum-org:device:WANConnectionDevice:1</deviceType>"
    "<friendlyName>WANConnectionDevice</friendlyName>"
    "<UDN>uuid:00e0fc37-2525-2828-2500-0ca2f48f6f2c</UDN><serviceList><service><serviceType>"
    "urn:dslforum-org:service:WANPPPConnection:1</serviceType><serviceId>"
    "urn:dslforum-org:serviceId:WANPPPConnection1</serviceId><controlURL>"
    "/upnp/control/WANPPPConn1</controlURL><eventSubURL>/upnp/event/WANPPPConn1</eventSubURL>"
    "<SCPDURL>/wanpppconnSCPD.xml</SCPDURL></service></serviceList></device></deviceList>"
    "</device></deviceList></device></root>";

/* MikroTik with two WANs: PPP in WANDevice 1, IP in WANDevice 2 (Q29) */
static const char DESC_TWO[] =
    "<?xml version=\"1.0\"?>\r\n"
    "<root xmlns=\"urn:schemas-upnp-org:device-1-0\"><specVersion><major>1</major><minor>0</minor>"
    "</specVersion><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1"
    "</deviceType><friendlyName>MikroTik Router</friendlyName><manufacturer>MikroTik"
    "</manufacturer><modelName>Router OS</modelName><UDN>"
    "uuid:0d1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f0</UDN><deviceList><device><deviceType>"
    "urn:schemas-upnp-org:device:WANDevice:1</deviceType><friendlyName>WAN Device ether1"
    "</friendlyName><UDN>uuid:0d1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f1</UDN><deviceList><device>"
    "<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType><friendlyName>"
    "WAN Connection Device</friendlyName><UDN>uuid:0d1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f2</UDN>"
    "<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANPPPConnection:1"
    "</serviceType><serviceId>urn:upnp-org:serviceId:WANPPPConn1</serviceId><controlURL>"
    "/ctl/PPPConn</controlURL><eventSubURL>/evt/PPPConn</eventSubURL><SCPDURL>/ppp.xml</SCPDURL>"
    "</service></serviceList></device></deviceList></device><device><deviceType>"
    "urn:schemas-upnp-org:device:WANDevice:1</deviceType><friendlyName>WAN Device ether2"
    "</friendlyName><UDN>uuid:0d1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f3</UDN><deviceList><device>"
    "<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType><friendlyName>"
    "WAN Connection Device</friendlyName><UDN>uuid:0d1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f4</UDN>"
    "<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1"
    "</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><controlURL>"
    "/ctl/IPConn2</controlURL><eventSubURL>/evt/IPConn2</eventSubURL><SCPDURL>/ip.xml</SCPDURL>"
    "</service></serviceList></device></deviceList></device></deviceList></device></root>\r\n";

/* ---------- state ---------- */

typedef struct fake_svc {
  const char *type;
  const char *path;
  char status[32];
  char ext_ip[48];
} fake_svc_t;

typedef struct fake_conn {
  int fd;
  char in[FAKE_IN_MAX];
  size_t in_len;
  int complete; /* a whole request is in */
  uint64_t due; /* when to answer (Q20) */
  char *out;
  size_t out_len, out_off;
  int trickle;      /* out goes one octet per trickle_ms, then 'a' for ever */
  uint64_t next_at; /* the next trickled octet */
  int big;          /* out is the oversized description */
} fake_conn_t;

struct fake_upnp {
  pthread_mutex_t mu;
  pthread_t thread;
  int stop;
  int stop_pipe[2];
  fake_upnp_profile_t profile;
  const char *desc;
  const char *profile_desc;
  char uptime_elt[16]; /* GetStatusInfo's uptime element */
  const char *server;
  const char *uuid;
  const char *targets[4]; /* search targets answered */
  fake_svc_t svc[FAKE_MAX_SERVICES];
  size_t n_svc;
  char addr[16]; /* the loopback address it listens on */
  int ssdp_fd, ssdp_other_fd, rogue_fd, http_fd;
  uint16_t ssdp_port, http_port;
  fake_conn_t conns[FAKE_UPNP_MAX_CONNS];
  /* quirks */
  int reply_other, ignore_unicast, permanent_code;
  char only_st[128];
  char rogue[256];
  char location[256]; /* "" = the real one */
  unsigned duplicates, delay_ms;
  char delay_action[48]; /* "" = every request */
  int conflict_all;      /* 718 to every port */
  unsigned move_after;   /* 0 = never */
  char trickle[48];      /* "" off, "rootDesc" or a SOAP action */
  unsigned trickle_ms;
  int chunked;     /* replies in the chunked coding */
  size_t big_size; /* 0 off */
  int big_length;  /* announce Content-Length */
  uint16_t conflict_port[FAKE_MAX_CONFLICTS];
  int conflict_code[FAKE_MAX_CONFLICTS];
  size_t n_conflicts;
  /* table and records */
  fake_upnp_entry_t entries[FAKE_UPNP_MAX_ENTRIES];
  size_t n_entries;
  fake_upnp_request_t log[FAKE_UPNP_LOG_SIZE];
  size_t n_log;
  char targets_seen[FAKE_MAX_TARGETS][128];
  size_t n_targets_seen;
  unsigned pending;
  fake_upnp_stats_t stats;
};

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void copy(char *dst, size_t cap, const char *src, size_t n) {
  if (cap == 0)
    return;
  if (n >= cap)
    n = cap - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

static int udp_bind(const char *ip, uint16_t *port_out) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  inet_pton(AF_INET, ip, &sa.sin_addr);
  socklen_t sl = sizeof sa;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
    close(fd);
    return -1;
  }
  if (port_out != NULL)
    *port_out = ntohs(sa.sin_port);
  return fd;
}

static int tcp_listen(const char *addr, uint16_t *port_out) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
    close(fd);
    return -1;
  }
  socklen_t sl = sizeof sa;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 16) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
    close(fd);
    return -1;
  }
  *port_out = ntohs(sa.sin_port);
  return fd;
}

/* Q13: the control port changes, as after a reboot. Lock held. */
static void move_http(fake_upnp_t *f) {
  uint16_t port = 0;
  int fd = tcp_listen(f->addr, &port);
  if (fd < 0)
    return;
  if (f->http_fd >= 0)
    close(f->http_fd); /* connections to the old port are refused from now on */
  f->http_fd = fd;
  f->http_port = port;
  f->stats.moves++;
}

/* ---------- SSDP ---------- */

static int header_value(const char *msg, const char *name, char *out, size_t cap) {
  size_t nl = strlen(name);
  for (const char *p = msg; p != NULL && *p != '\0';) {
    const char *eol = strstr(p, "\r\n");
    size_t ll = eol != NULL ? (size_t)(eol - p) : strlen(p);
    if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *v = p + nl + 1;
      while (*v == ' ')
        v++;
      copy(out, cap, v, (size_t)(p + ll - v));
      return 1;
    }
    p = eol != NULL ? eol + 2 : NULL;
  }
  return 0;
}

static void ssdp_reply(fake_upnp_t *f, int fd, const struct sockaddr_in *to, const char *st,
                       const char *location) {
  char buf[1024];
  int n = snprintf(buf, sizeof buf,
                   "HTTP/1.1 200 OK\r\n"
                   "CACHE-CONTROL: max-age=120\r\n"
                   "ST: %s\r\n"
                   "USN: uuid:%s::%s\r\n"
                   "EXT:\r\n"
                   "SERVER: %s\r\n"
                   "LOCATION: %s\r\n"
                   "OPT: \"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\n"
                   "01-NLS: 1\r\n"
                   "BOOTID.UPNP.ORG: 1\r\n"
                   "CONFIGID.UPNP.ORG: 1337\r\n"
                   "\r\n",
                   st, f->uuid, st, f->server, location);
  if (n <= 0 || (size_t)n >= sizeof buf)
    return;
  if (sendto(fd, buf, (size_t)n, 0, (const struct sockaddr *)to, sizeof *to) > 0)
    f->stats.ssdp_replies++;
}

static void on_msearch(fake_upnp_t *f, const char *msg, const struct sockaddr_in *from) {
  if (strncmp(msg, "M-SEARCH * HTTP/1.1\r\n", 21) != 0)
    return;
  char man[64], st[128];
  if (!header_value(msg, "MAN", man, sizeof man) || strcmp(man, "\"ssdp:discover\"") != 0 ||
      !header_value(msg, "ST", st, sizeof st))
    return;
  f->stats.msearch++;
  if (f->n_targets_seen < FAKE_MAX_TARGETS)
    copy(f->targets_seen[f->n_targets_seen++], 128, st, strlen(st));
  if (f->ignore_unicast)
    return; /* Q3: this gateway answers multicast only */
  const char *answer = NULL;
  if (f->only_st[0] != '\0') {
    if (strcmp(st, f->only_st) == 0)
      answer = st;
  } else if (strcmp(st, "ssdp:all") == 0) {
    answer = "upnp:rootdevice"; /* Q2: the first descriptor only */
  } else {
    for (size_t i = 0; i < 4 && f->targets[i] != NULL; i++)
      if (strcmp(st, f->targets[i]) == 0)
        answer = st;
  }
  if (answer == NULL)
    return;
  char location[256];
  if (f->location[0] != '\0')
    copy(location, sizeof location, f->location, strlen(f->location));
  else
    snprintf(location, sizeof location, "http://%s:%u/rootDesc.xml", f->addr, f->http_port);
  unsigned copies = f->duplicates > 0 ? f->duplicates : 1;
  for (unsigned i = 0; i < copies; i++) {
    if (f->rogue[0] != '\0' && f->rogue_fd >= 0)
      ssdp_reply(f, f->rogue_fd, from, answer, f->rogue); /* Q4 */
    ssdp_reply(f, f->reply_other ? f->ssdp_other_fd : f->ssdp_fd, from, answer, location);
  }
}

static void ssdp_read(fake_upnp_t *f) {
  for (int i = 0; i < 64; i++) {
    char buf[2048];
    struct sockaddr_in from;
    socklen_t sl = sizeof from;
    ssize_t n =
        recvfrom(f->ssdp_fd, buf, sizeof buf - 1, MSG_DONTWAIT, (struct sockaddr *)&from, &sl);
    if (n <= 0)
      return;
    buf[n] = '\0';
    on_msearch(f, buf, &from);
  }
}

/* ---------- SOAP ---------- */

static void xml_decode(char *dst, size_t cap, const char *src, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 1 < cap; i++) {
    static const struct {
      const char *e;
      char c;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    char c = src[i];
    if (c == '&') {
      for (size_t k = 0; k < sizeof ents / sizeof ents[0]; k++) {
        size_t el = strlen(ents[k].e);
        if (i + el <= n && memcmp(src + i, ents[k].e, el) == 0) {
          c = ents[k].c;
          i += el - 1;
          break;
        }
      }
    }
    dst[o++] = c;
  }
  dst[o] = '\0';
}

/* The text of <name>...</name> in a SOAP body; 0 when absent. */
static int arg(const char *body, const char *name, char *out, size_t cap) {
  char open[64], close_tag[64];
  snprintf(open, sizeof open, "<%s>", name);
  snprintf(close_tag, sizeof close_tag, "</%s>", name);
  const char *a = strstr(body, open);
  if (a == NULL) {
    snprintf(open, sizeof open, "<%s/>", name);
    if (strstr(body, open) != NULL) {
      out[0] = '\0';
      return 1;
    }
    out[0] = '\0';
    return 0;
  }
  a += strlen(open);
  const char *b = strstr(a, close_tag);
  if (b == NULL) {
    out[0] = '\0';
    return 0;
  }
  xml_decode(out, cap, a, (size_t)(b - a));
  return 1;
}

static int parse_port(const char *s, long *out) {
  char *end;
  if (s[0] == '\0')
    return 0;
  long v = strtol(s, &end, 10);
  if (*end != '\0' || v < 0 || v > 65535)
    return 0;
  *out = v;
  return 1;
}

static fake_upnp_entry_t *find_entry(fake_upnp_t *f, const char *proto, long port) {
  for (size_t i = 0; i < f->n_entries; i++)
    if (f->entries[i].ext_port == port && strcmp(f->entries[i].proto, proto) == 0)
      return &f->entries[i];
  return NULL;
}

static int conflict_code(fake_upnp_t *f, long port) {
  if (f->conflict_all)
    return 718;
  for (size_t i = 0; i < f->n_conflicts; i++)
    if (f->conflict_port[i] == port)
      return f->conflict_code[i];
  return 0;
}

static const char *error_name(int code) {
  switch (code) {
  case 401:
    return "Invalid Action";
  case 402:
    return "Invalid Args";
  case 501:
    return "Action Failed";
  case 713:
    return "SpecifiedArrayIndexInvalid";
  case 714:
    return "NoSuchEntryInArray";
  case 716:
    return "WildCardNotPermittedInExtPort";
  case 718:
    return "ConflictInMappingEntry";
  case 725:
    return "OnlyPermanentLeasesSupported";
  case 728:
    return "NoPortMapsAvailable";
  case 729:
    return "ConflictWithOtherMechanisms";
  default:
    return "Error";
  }
}

/* Build the full HTTP response in c->out. */
static void respond(fake_conn_t *c, int status, const char *content_type, const char *body) {
  size_t bl = strlen(body);
  size_t cap = bl + 512;
  c->out = malloc(cap);
  if (c->out == NULL)
    return;
  int n = snprintf(c->out, cap,
                   "HTTP/1.1 %d %s\r\n"
                   "Content-Type: %s\r\n"
                   "Connection: close\r\n"
                   "Content-Length: %zu\r\n"
                   "Server: Fake/1.0 UPnP/1.1 fake_upnp/1.0\r\n"
                   "Ext:\r\n"
                   "\r\n"
                   "%s",
                   status,
                   status == 200   ? "OK"
                   : status == 500 ? "Internal Server Error"
                                   : "Not Found",
                   content_type, bl, body);
  c->out_len = n > 0 ? (size_t)n : 0;
  c->out_off = 0;
}

static void soap_ok(fake_conn_t *c, const char *action, const char *service, const char *args) {
  char body[4096];
  snprintf(body, sizeof body,
           "<?xml version=\"1.0\"?>\r\n"
           "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" "
           "s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>"
           "<u:%sResponse xmlns:u=\"%s\">%s</u:%sResponse></s:Body></s:Envelope>\r\n",
           action, service, args, action);
  respond(c, 200, "text/xml; charset=\"utf-8\"", body);
}

static void soap_fault(fake_conn_t *c, int code) {
  char body[1024];
  snprintf(body, sizeof body,
           "<?xml version=\"1.0\"?>\r\n"
           "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" "
           "s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><s:Fault>"
           "<faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>"
           "<UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>%d</errorCode>"
           "<errorDescription>%s</errorDescription></UPnPError></detail></s:Fault></s:Body>"
           "</s:Envelope>\r\n",
           code, error_name(code));
  respond(c, 500, "text/xml; charset=\"utf-8\"", body);
}

static void xml_escape_into(char *dst, size_t cap, const char *src) {
  size_t o = 0;
  for (size_t i = 0; src[i] != '\0' && o + 7 < cap; i++) {
    const char *r = NULL;
    switch (src[i]) {
    case '&':
      r = "&amp;";
      break;
    case '<':
      r = "&lt;";
      break;
    case '>':
      r = "&gt;";
      break;
    default:
      break;
    }
    if (r != NULL) {
      memcpy(dst + o, r, strlen(r));
      o += strlen(r);
    } else {
      dst[o++] = src[i];
    }
  }
  dst[o] = '\0';
}

/* Add (any = AddAnyPortMapping). Returns 0 or a UPnP error; *port_out the port. */
static int do_add(fake_upnp_t *f, const fake_upnp_request_t *r, int any, long *port_out) {
  long ext;
  if (strcmp(r->proto, "TCP") != 0 && strcmp(r->proto, "UDP") != 0) {
    if (strcasecmp(r->proto, "TCP") == 0 || strcasecmp(r->proto, "UDP") == 0)
      f->stats.lower_case++; /* Q7 */
    return 402;
  }
  if (!parse_port(r->ext_port, &ext))
    return 402;
  if (ext == 0) {
    f->stats.port_zero++; /* Q8 */
    return 716;
  }
  struct in_addr ia;
  if (inet_pton(AF_INET, r->client, &ia) != 1)
    return 402;
  char *end;
  unsigned long lease = strtoul(r->lease, &end, 10);
  if (r->lease[0] == '\0' || *end != '\0' || lease > 604800)
    return 402;
  if (f->permanent_code != 0 && lease != 0)
    return f->permanent_code; /* Q9 */
  for (int tries = 0; tries < 65536; tries++) {
    int code = conflict_code(f, ext);
    fake_upnp_entry_t *e = find_entry(f, r->proto, ext);
    int taken = code != 0 || (e != NULL && strcmp(e->client, r->client) != 0);
    if (!taken)
      break;
    if (!any)
      return code != 0 ? code : 718;
    ext = ext >= 65535 ? 1024 : ext + 1; /* AddAnyPortMapping: the next free one */
  }
  *port_out = ext;
  return 0;
}

static void handle_soap(fake_upnp_t *f, fake_conn_t *c, const char *path, const char *soapact,
                        const char *body) {
  fake_upnp_request_t r;
  memset(&r, 0, sizeof r);
  copy(r.path, sizeof r.path, path, strlen(path));
  /* SOAPAction: "urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping" */
  const char *hash = strchr(soapact, '#');
  const char *sa = soapact[0] == '"' ? soapact + 1 : soapact;
  if (hash != NULL && hash > sa) {
    copy(r.service, sizeof r.service, sa, (size_t)(hash - sa));
    const char *act = hash + 1;
    size_t al = strcspn(act, "\"");
    copy(r.action, sizeof r.action, act, al);
  }
  char rhost[64];
  arg(body, "NewProtocol", r.proto, sizeof r.proto);
  arg(body, "NewExternalPort", r.ext_port, sizeof r.ext_port);
  arg(body, "NewLeaseDuration", r.lease, sizeof r.lease);
  arg(body, "NewInternalClient", r.client, sizeof r.client);
  arg(body, "NewPortMappingDescription", r.desc, sizeof r.desc);
  arg(body, "NewRemoteHost", rhost, sizeof rhost);
  char in_port[16], index[16];
  arg(body, "NewInternalPort", in_port, sizeof in_port);
  arg(body, "NewPortMappingIndex", index, sizeof index);

  fake_svc_t *svc = NULL;
  for (size_t i = 0; i < f->n_svc; i++)
    if (strcmp(f->svc[i].path, path) == 0)
      svc = &f->svc[i];
  int result = 0;
  char out[2048];
  out[0] = '\0';
  if (svc == NULL || strcmp(r.service, svc->type) != 0) {
    result = 401; /* Q28: the service type must be the service's own */
  } else if (strcmp(r.action, "GetStatusInfo") == 0) {
    snprintf(out, sizeof out,
             "<NewConnectionStatus>%s</NewConnectionStatus>"
             "<NewLastConnectionError>ERROR_NONE</NewLastConnectionError>"
             "%s%s%s4242%s%s%s",
             svc->status, f->uptime_elt[0] ? "<" : "", f->uptime_elt, f->uptime_elt[0] ? ">" : "",
             f->uptime_elt[0] ? "</" : "", f->uptime_elt, f->uptime_elt[0] ? ">" : "");
  } else if (strcmp(r.action, "GetExternalIPAddress") == 0) {
    snprintf(out, sizeof out, "<NewExternalIPAddress>%s</NewExternalIPAddress>", svc->ext_ip);
  } else if (strcmp(r.action, "AddPortMapping") == 0 ||
             strcmp(r.action, "AddAnyPortMapping") == 0) {
    int any = strcmp(r.action, "AddAnyPortMapping") == 0;
    long port = 0, ip = 0;
    if (any && svc->type[strlen(svc->type) - 1] != '2')
      result = 401;
    else if (!parse_port(in_port, &ip) || ip == 0)
      result = 402;
    else
      result = do_add(f, &r, any, &port);
    if (result == 0) {
      fake_upnp_entry_t *e = find_entry(f, r.proto, port);
      if (e == NULL && f->n_entries < FAKE_UPNP_MAX_ENTRIES)
        e = &f->entries[f->n_entries++];
      if (e == NULL) {
        result = 728;
      } else {
        memset(e, 0, sizeof *e);
        copy(e->proto, sizeof e->proto, r.proto, strlen(r.proto));
        e->ext_port = (uint16_t)port;
        copy(e->client, sizeof e->client, r.client, strlen(r.client));
        e->int_port = (uint16_t)ip;
        copy(e->desc, sizeof e->desc, r.desc, strlen(r.desc));
        e->lease = (uint32_t)strtoul(r.lease, NULL, 10);
        e->enabled = 1;
        if (any)
          snprintf(out, sizeof out, "<NewReservedPort>%ld</NewReservedPort>", port);
      }
    }
  } else if (strcmp(r.action, "GetSpecificPortMappingEntry") == 0) {
    long ext = 0;
    fake_upnp_entry_t *e = parse_port(r.ext_port, &ext) ? find_entry(f, r.proto, ext) : NULL;
    if (e == NULL) {
      result = 714;
    } else {
      char d[512];
      xml_escape_into(d, sizeof d, e->desc);
      snprintf(out, sizeof out,
               "<NewInternalPort>%u</NewInternalPort><NewInternalClient>%s</NewInternalClient>"
               "<NewEnabled>%d</NewEnabled><NewPortMappingDescription>%s"
               "</NewPortMappingDescription><NewLeaseDuration>%u</NewLeaseDuration>",
               e->int_port, e->client, e->enabled, d, e->lease);
    }
  } else if (strcmp(r.action, "DeletePortMapping") == 0) {
    long ext = 0;
    fake_upnp_entry_t *e = parse_port(r.ext_port, &ext) ? find_entry(f, r.proto, ext) : NULL;
    if (e == NULL) {
      result = 714;
    } else {
      size_t i = (size_t)(e - f->entries);
      memmove(&f->entries[i], &f->entries[i + 1], (f->n_entries - i - 1) * sizeof *e);
      f->n_entries--;
    }
  } else if (strcmp(r.action, "GetGenericPortMappingEntry") == 0) {
    char *end;
    unsigned long i = strtoul(index, &end, 10);
    if (index[0] == '\0' || *end != '\0' || i >= f->n_entries) {
      result = 713;
    } else {
      fake_upnp_entry_t *e = &f->entries[i];
      char d[512];
      xml_escape_into(d, sizeof d, e->desc);
      snprintf(out, sizeof out,
               "<NewRemoteHost></NewRemoteHost><NewExternalPort>%u</NewExternalPort>"
               "<NewProtocol>%s</NewProtocol><NewInternalPort>%u</NewInternalPort>"
               "<NewInternalClient>%s</NewInternalClient><NewEnabled>%d</NewEnabled>"
               "<NewPortMappingDescription>%s</NewPortMappingDescription>"
               "<NewLeaseDuration>%u</NewLeaseDuration>",
               e->ext_port, e->proto, e->int_port, e->client, e->enabled, d, e->lease);
    }
  } else {
    result = 401;
  }
  r.result = result;
  if (result == 0)
    soap_ok(c, r.action, svc->type, out);
  else
    soap_fault(c, result);
  if (f->n_log < FAKE_UPNP_LOG_SIZE)
    f->log[f->n_log] = r;
  f->n_log++;
  f->stats.soap++;
  if (f->move_after > 0 && --f->move_after == 0)
    move_http(f); /* Q13 */
}

/* ---------- HTTP ---------- */

static void conn_close(fake_conn_t *c) {
  if (c->fd >= 0)
    close(c->fd);
  free(c->out);
  memset(c, 0, sizeof *c);
  c->fd = -1;
}

/* A whole request is in: headers and Content-Length octets of body. */
static int request_complete(fake_conn_t *c, size_t *body_off, size_t *body_len) {
  c->in[c->in_len] = '\0';
  char *end = strstr(c->in, "\r\n\r\n");
  if (end == NULL)
    return 0;
  *body_off = (size_t)(end + 4 - c->in);
  char cl[32];
  size_t need = 0;
  *end = '\0';
  if (header_value(c->in, "Content-Length", cl, sizeof cl))
    need = (size_t)strtoul(cl, NULL, 10);
  *end = '\r';
  *body_len = need;
  return c->in_len >= *body_off + need;
}

/* A reply that never ends: a header line one octet at a time. */
static void start_trickle(fake_upnp_t *f, fake_conn_t *c, uint64_t now) {
  static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nX-Trickle: ";
  c->out = malloc(sizeof head);
  if (c->out == NULL)
    return;
  memcpy(c->out, head, sizeof head);
  c->out_len = sizeof head - 1;
  c->out_off = 0;
  c->trickle = 1;
  c->next_at = now;
  f->stats.trickles++;
}

/* The oversized description: a comment padded to big_size octets. */
static void start_big(fake_upnp_t *f, fake_conn_t *c) {
  char head[256];
  int hl = f->big_length ? snprintf(head, sizeof head,
                                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n"
                                    "Connection: close\r\nContent-Length: %zu\r\n\r\n",
                                    f->big_size)
                         : snprintf(head, sizeof head,
                                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n"
                                    "Connection: close\r\n\r\n");
  if (hl <= 0 || f->big_size < 32)
    return;
  c->out = malloc((size_t)hl + f->big_size);
  if (c->out == NULL)
    return;
  memcpy(c->out, head, (size_t)hl);
  char *b = c->out + hl;
  memset(b, 'x', f->big_size);
  memcpy(b, "<?xml version=\"1.0\"?><!--", 25);
  memcpy(b + f->big_size - 3, "-->", 3);
  c->out_len = (size_t)hl + f->big_size;
  c->out_off = 0;
  c->big = 1;
  /* a small send buffer: what we manage to send is what the client read */
  int sndbuf = 16384;
  (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
}

/* Re-frame a built reply with the chunked coding (RFC 9112 section 7.1):
 * 7-octet chunks, an extension on the first, a trailer at the end. */
static void chunk_reply(fake_conn_t *c) {
  char *eoh = c->out != NULL ? strstr(c->out, "\r\n\r\n") : NULL;
  char *cl = c->out != NULL ? strstr(c->out, "Content-Length: ") : NULL;
  if (eoh == NULL || cl == NULL || cl > eoh)
    return;
  char *cl_end = strstr(cl, "\r\n");
  const char *body = eoh + 4;
  size_t blen = c->out_len - (size_t)(body - c->out);
  size_t cap = c->out_len + 64 + blen / 7 * 8 + 64;
  char *o = malloc(cap);
  if (o == NULL)
    return;
  size_t n = (size_t)(cl - c->out);
  memcpy(o, c->out, n);
  n += (size_t)snprintf(o + n, cap - n, "Transfer-Encoding: chunked");
  memcpy(o + n, cl_end, (size_t)(body - cl_end));
  n += (size_t)(body - cl_end);
  for (size_t i = 0; i < blen; i += 7) {
    size_t len = blen - i < 7 ? blen - i : 7;
    n += (size_t)snprintf(o + n, cap - n, i == 0 ? "%zx;fake=1\r\n" : "%zx\r\n", len);
    memcpy(o + n, body + i, len);
    n += len;
    memcpy(o + n, "\r\n", 2);
    n += 2;
  }
  n += (size_t)snprintf(o + n, cap - n, "0\r\nX-Trailer: yes\r\n\r\n");
  free(c->out);
  c->out = o;
  c->out_len = n;
  c->out_off = 0;
}

static void answer(fake_upnp_t *f, fake_conn_t *c, uint64_t now) {
  size_t off = 0, blen = 0;
  if (!request_complete(c, &off, &blen))
    return;
  char method[8], path[128];
  if (sscanf(c->in, "%7s %127s", method, path) != 2) {
    respond(c, 404, "text/plain", "bad request\n");
    return;
  }
  char head[FAKE_IN_MAX];
  copy(head, sizeof head, c->in, off);
  char soapact[256] = "";
  header_value(head, "SOAPAction", soapact, sizeof soapact);
  int desc = strcmp(method, "GET") == 0 && strcmp(path, "/rootDesc.xml") == 0;
  if (f->trickle[0] != '\0' &&
      ((desc && strcmp(f->trickle, "rootDesc") == 0) ||
       (!desc && soapact[0] != '\0' && strstr(soapact, f->trickle) != NULL))) {
    start_trickle(f, c, now);
    return;
  }
  if (desc && f->big_size > 0) {
    f->stats.desc_gets++;
    start_big(f, c);
    return;
  }
  if (desc) {
    f->stats.desc_gets++;
    /* substitute the current port for %PORT% */
    char body[16384];
    const char *src = f->desc;
    size_t o = 0;
    while (*src != '\0' && o + 8 < sizeof body) {
      if (strncmp(src, "%PORT%", 6) == 0) {
        o += (size_t)snprintf(body + o, sizeof body - o, "%u", f->http_port);
        src += 6;
      } else {
        body[o++] = *src++;
      }
    }
    body[o] = '\0';
    respond(c, 200, "text/xml; charset=\"utf-8\"", body);
  } else if (strcmp(method, "POST") == 0 && soapact[0] != '\0') {
    char body[FAKE_IN_MAX];
    copy(body, sizeof body, c->in + off, blen);
    handle_soap(f, c, path, soapact, body);
  } else {
    respond(c, 404, "text/plain", "not found\n");
  }
}

static void conn_step(fake_upnp_t *f, fake_conn_t *c, short revents, uint64_t now) {
  if (c->out == NULL && !c->complete && (revents & (POLLIN | POLLHUP | POLLERR))) {
    ssize_t n = recv(c->fd, c->in + c->in_len, FAKE_IN_MAX - 1 - c->in_len, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      conn_close(c);
      return;
    }
    if (n > 0)
      c->in_len += (size_t)n;
    size_t off, blen;
    if (request_complete(c, &off, &blen)) {
      c->complete = 1;
      c->due = now;
      if (f->delay_action[0] == '\0') {
        c->due = now + f->delay_ms;
      } else {
        char head[1024], act[256];
        copy(head, sizeof head, c->in, off < sizeof head ? off : sizeof head - 1);
        if (header_value(head, "SOAPAction", act, sizeof act) && strstr(act, f->delay_action))
          c->due = now + f->delay_ms;
      }
      f->pending++;
      if (f->pending > 1)
        f->stats.overlaps++; /* Q20: a second request while one is unanswered */
      if (f->pending > f->stats.max_pending)
        f->stats.max_pending = f->pending;
    } else if (c->in_len >= FAKE_IN_MAX - 1) {
      conn_close(c);
      return;
    }
  }
  if (c->trickle) {
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
      char scratch[256];
      ssize_t n = recv(c->fd, scratch, sizeof scratch, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        f->stats.hangups++; /* the client gave up on us */
        conn_close(c);
        return;
      }
    }
    if (now >= c->next_at) {
      char b = c->out_off < c->out_len ? c->out[c->out_off] : 'a';
      if (send(c->fd, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1) {
        c->out_off++;
        f->stats.trickled++;
      }
      c->next_at = now + f->trickle_ms;
    }
    return;
  }
  if (c->complete && c->out == NULL && now >= c->due) {
    answer(f, c, now);
    if (f->chunked && c->out != NULL && !c->trickle && !c->big)
      chunk_reply(c);
    f->pending--;
    if (c->trickle)
      return; /* from now on by the clock */
    if (c->out == NULL) {
      conn_close(c);
      return;
    }
  }
  if (c->out != NULL) {
    int failed = 0;
    while (c->out_off < c->out_len) {
      ssize_t n =
          send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        failed = 1; /* the client closed before the end */
      if (n <= 0)
        break;
      c->out_off += (size_t)n;
    }
    if (c->big && (failed || c->out_off >= c->out_len)) {
      f->stats.big_sent += c->out_off;
      if (failed)
        f->stats.hangups++;
    }
    if (failed || c->out_off >= c->out_len)
      conn_close(c);
  }
}

static void *fake_main(void *arg) {
  fake_upnp_t *f = arg;
  for (;;) {
    struct pollfd p[FAKE_UPNP_MAX_CONNS + 3];
    int idx[FAKE_UPNP_MAX_CONNS];
    nfds_t n = 0;
    pthread_mutex_lock(&f->mu);
    if (f->stop) {
      pthread_mutex_unlock(&f->mu);
      break;
    }
    p[n].fd = f->stop_pipe[0];
    p[n].events = POLLIN;
    n++;
    p[n].fd = f->ssdp_fd;
    p[n].events = POLLIN;
    n++;
    p[n].fd = f->http_fd;
    p[n].events = POLLIN;
    n++;
    size_t nc = 0;
    for (int i = 0; i < FAKE_UPNP_MAX_CONNS; i++) {
      if (f->conns[i].fd < 0)
        continue;
      p[n].fd = f->conns[i].fd;
      p[n].events = (short)(f->conns[i].out != NULL && !f->conns[i].trickle ? POLLOUT : POLLIN);
      idx[nc++] = i;
      n++;
    }
    pthread_mutex_unlock(&f->mu);
    for (nfds_t i = 0; i < n; i++)
      p[i].revents = 0;
    (void)poll(p, n, 5);
    pthread_mutex_lock(&f->mu);
    uint64_t now = mono_ms();
    if (p[1].revents & POLLIN)
      ssdp_read(f);
    if ((p[2].revents & POLLIN) && p[2].fd == f->http_fd) {
      for (int k = 0; k < FAKE_UPNP_MAX_CONNS; k++) {
        int fd = accept4(f->http_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
          break;
        int slot = -1;
        for (int i = 0; i < FAKE_UPNP_MAX_CONNS && slot < 0; i++)
          if (f->conns[i].fd < 0)
            slot = i;
        if (slot < 0) {
          close(fd);
          continue;
        }
        f->conns[slot].fd = fd;
      }
    }
    for (size_t k = 0; k < nc; k++) {
      fake_conn_t *c = &f->conns[idx[k]];
      if (c->fd == p[3 + k].fd)
        conn_step(f, c, p[3 + k].revents, now);
    }
    /* delayed answers and trickled octets are due by the clock, not by a socket event */
    for (int i = 0; i < FAKE_UPNP_MAX_CONNS; i++)
      if (f->conns[i].fd >= 0 &&
          ((f->conns[i].complete && f->conns[i].out == NULL) || f->conns[i].trickle))
        conn_step(f, &f->conns[i], 0, now);
    pthread_mutex_unlock(&f->mu);
  }
  return NULL;
}

/* ---------- life cycle ---------- */

static void set_svc(fake_svc_t *s, const char *type, const char *path, const char *status,
                    const char *ip) {
  s->type = type;
  s->path = path;
  copy(s->status, sizeof s->status, status, strlen(status));
  copy(s->ext_ip, sizeof s->ext_ip, ip, strlen(ip));
}

fake_upnp_t *fake_upnp_new(fake_upnp_profile_t profile) {
  return fake_upnp_new_at(profile, "127.0.0.1");
}

fake_upnp_t *fake_upnp_new_at(fake_upnp_profile_t profile, const char *addr) {
  if (addr == NULL || strlen(addr) >= sizeof((fake_upnp_t *)0)->addr)
    return NULL;
  fake_upnp_t *f = calloc(1, sizeof *f);
  if (f == NULL)
    return NULL;
  copy(f->addr, sizeof f->addr, addr, strlen(addr));
  f->ssdp_fd = f->ssdp_other_fd = f->rogue_fd = f->http_fd = -1;
  f->stop_pipe[0] = f->stop_pipe[1] = -1;
  for (int i = 0; i < FAKE_UPNP_MAX_CONNS; i++)
    f->conns[i].fd = -1;
  f->profile = profile;
  f->duplicates = 1;
  const char *igd1 = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
  const char *igd2 = "urn:schemas-upnp-org:device:InternetGatewayDevice:2";
  switch (profile) {
  case FAKE_UPNP_IGD1:
    f->desc = DESC_IGD1;
    f->server = "OpenWRT/22.03 UPnP/1.1 MiniUPnPd/2.3.1";
    f->uuid = "9a1f7e2c-0000-4000-8000-00000000a001";
    f->targets[0] = igd1;
    set_svc(&f->svc[0], "urn:schemas-upnp-org:service:WANIPConnection:1", "/ctl/IPConn",
            "Connected", "203.0.113.5");
    f->n_svc = 1;
    break;
  case FAKE_UPNP_IGD2:
    f->desc = DESC_IGD2;
    f->server = "Linux/6.1 UPnP/2.0 MiniUPnPd/2.3.4";
    f->uuid = "5c0ffee0-0000-4000-8000-00000000b001";
    f->targets[0] = igd1;
    f->targets[1] = igd2;
    set_svc(&f->svc[0], "urn:schemas-upnp-org:service:WANIPConnection:2", "/ctl/IPConn",
            "Connected", "203.0.113.5");
    f->n_svc = 1;
    break;
  case FAKE_UPNP_PPP_ONLY:
    f->desc = DESC_PPP;
    f->server = "DrayTek/Vigor2760 UPnP/1.0 miniupnpd/1.0";
    f->uuid = "11223344-5566-7788-99aa-bbccddee0001";
    f->targets[0] = igd1;
    set_svc(&f->svc[0], "urn:schemas-upnp-org:service:WANPPPConnection:1", "/ctl/PPPConn",
            "Connected", "203.0.113.5");
    f->n_svc = 1;
    break;
  case FAKE_UPNP_DSLFORUM:
    f->desc = DESC_DSLF;
    f->server = "Linux UPnP/1.0 Huawei-ATP-IGD";
    f->uuid = "00e0fc37-2525-2828-2500-0ca2f48f6f2a";
    f->targets[0] = "urn:dslforum-org:device:InternetGatewayDevice:1";
    set_svc(&f->svc[0], "urn:dslforum-org:service:WANPPPConnection:1", "/upnp/control/WANPPPConn1",
            "Connected", "203.0.113.5");
    f->n_svc = 1;
    break;
  case FAKE_UPNP_TWO_WAN:
    f->desc = DESC_TWO;
    f->server = "MikroTik/6.x UPnP/1.0 MikroTik UPnP/1.0";
    f->uuid = "0d1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f0";
    f->targets[0] = igd1;
    set_svc(&f->svc[0], "urn:schemas-upnp-org:service:WANPPPConnection:1", "/ctl/PPPConn",
            "Connected", "198.51.100.20");
    set_svc(&f->svc[1], "urn:schemas-upnp-org:service:WANIPConnection:1", "/ctl/IPConn2",
            "Disconnected", "0.0.0.0");
    f->n_svc = 2;
    break;
  default:
    free(f);
    return NULL;
  }
  f->profile_desc = f->desc;
  copy(f->uptime_elt, sizeof f->uptime_elt, "NewUptime", 9);
  for (size_t i = 0; i < 4; i++)
    if (f->targets[i] == NULL) {
      f->targets[i] = "upnp:rootdevice";
      break;
    }
  if (pthread_mutex_init(&f->mu, NULL) != 0) {
    free(f);
    return NULL;
  }
  f->ssdp_fd = udp_bind(f->addr, &f->ssdp_port);
  f->ssdp_other_fd = udp_bind(f->addr, NULL);
  f->rogue_fd = udp_bind("127.0.0.2", NULL); /* may fail on odd systems: Q4 tests skip */
  f->http_fd = tcp_listen(f->addr, &f->http_port);
  if (f->ssdp_fd < 0 || f->ssdp_other_fd < 0 || f->http_fd < 0 ||
      pipe2(f->stop_pipe, O_NONBLOCK | O_CLOEXEC) != 0 ||
      pthread_create(&f->thread, NULL, fake_main, f) != 0) {
    if (f->stop_pipe[0] >= 0) {
      close(f->stop_pipe[0]);
      close(f->stop_pipe[1]);
    }
    f->stop_pipe[0] = -1;
    int fds[4] = {f->ssdp_fd, f->ssdp_other_fd, f->rogue_fd, f->http_fd};
    for (int i = 0; i < 4; i++)
      if (fds[i] >= 0)
        close(fds[i]);
    pthread_mutex_destroy(&f->mu);
    free(f);
    return NULL;
  }
  return f;
}

void fake_upnp_free(fake_upnp_t *f) {
  if (f == NULL)
    return;
  pthread_mutex_lock(&f->mu);
  f->stop = 1;
  pthread_mutex_unlock(&f->mu);
  char b = 1;
  ssize_t n = write(f->stop_pipe[1], &b, 1);
  (void)n;
  pthread_join(f->thread, NULL);
  for (int i = 0; i < FAKE_UPNP_MAX_CONNS; i++)
    if (f->conns[i].fd >= 0)
      conn_close(&f->conns[i]);
  int fds[6] = {f->ssdp_fd, f->ssdp_other_fd, f->rogue_fd,
                f->http_fd, f->stop_pipe[0],  f->stop_pipe[1]};
  for (int i = 0; i < 6; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  pthread_mutex_destroy(&f->mu);
  free(f);
}

uint16_t fake_upnp_ssdp_port(fake_upnp_t *f) {
  pthread_mutex_lock(&f->mu);
  uint16_t p = f->ssdp_port;
  pthread_mutex_unlock(&f->mu);
  return p;
}

uint16_t fake_upnp_http_port(fake_upnp_t *f) {
  pthread_mutex_lock(&f->mu);
  uint16_t p = f->http_port;
  pthread_mutex_unlock(&f->mu);
  return p;
}

void fake_upnp_set_reply_other_port(fake_upnp_t *f, int on) {
  pthread_mutex_lock(&f->mu);
  f->reply_other = on;
  pthread_mutex_unlock(&f->mu);
}

void fake_upnp_set_only_st(fake_upnp_t *f, const char *st) {
  pthread_mutex_lock(&f->mu);
  if (st == NULL)
    f->only_st[0] = '\0';
  else
    copy(f->only_st, sizeof f->only_st, st, strlen(st));
  pthread_mutex_unlock(&f->mu);
}

void fake_upnp_set_ignore_unicast(fake_upnp_t *f, int on) {
  pthread_mutex_lock(&f->mu);
  f->ignore_unicast = on;
  pthread_mutex_unlock(&f->mu);
}

void fake_upnp_set_rogue(fake_upnp_t *f, const char *location) {
  pthread_mutex_lock(&f->mu);
  if (location == NULL)
    f->rogue[0] = '\0';
  else
    copy(f->rogue, sizeof f->rogue, location, strlen(location));
  pthread_mutex_unlock(&f->mu);
}

void fake_upnp_set_location(fake_upnp_t *f, const char *location) {
  pthread_mutex_lock(&f->mu);
  if (location == NULL)
    f->location[0] = '\0';
  else
    copy(f->location, sizeof f->location, location, strlen(location));
  pthread_mutex_unlock(&f->mu);
}

void fake_upnp_set_duplicates(fake_upnp_t *f, unsigned n) {
  pthread_mutex_lock(&f->mu);
  f->duplicates = n;
  pthread_mutex_unlock(&f->mu);
}

void fake_upnp_set_permanent_only(fake_upnp_t *f, int code) {
  pthread_mutex_lock(&f->mu);
  f->permanent_code = code;
  pthread_mutex_unlock(&f->mu);
}

void fake_upnp_add_conflict(fake_upnp_t *f, uint16_t port, int code) {
  pthread_mutex_lock(&f->mu);
  if (port == 0)
    f->conflict_all = 1;
  else if (f->n_conflicts < FAKE_MAX_CONFLICTS) {
    f->conflict_port[f->n_conflicts] = port;
    f->conflict_code[f->n_conflicts] = code;
    f->n_conflicts++;
  }
  pthread_mutex_unlock(&f->mu);
}

void fake_upnp_set_service(fake_upnp_t *f, size_t idx, const char *status, const char *ext_ip) {
  pthread_mutex_lock(&f->mu);
  if (idx < f->n_svc) {
    if (status != NULL)
      copy(f->svc[idx].status, sizeof f->svc[idx].status, status, strlen(status));
    if (ext_ip != NULL)
      copy(f->svc[idx].ext_ip, sizeof f->svc[idx].ext_ip, ext_ip, strlen(ext_ip));
  }
  pthread_mutex_unlock(&f->mu);
}

void fake_upnp_move_after(fake_upnp_t *f, unsigned n) {
  pthread_mutex_lock(&f->mu);
  f->move_after = n;
  pthread_mutex_unlock(&f->mu);
}

void fake_upnp_move_now(fake_upnp_t *f) {
  pthread_mutex_lock(&f->mu);
  move_http(f);
  pthread_mutex_unlock(&f->mu);
}

void fake_upnp_wipe(fake_upnp_t *f) {
  pthread_mutex_lock(&f->mu);
  f->n_entries = 0;
  pthread_mutex_unlock(&f->mu);
}

void fake_upnp_set_trickle(fake_upnp_t *f, const char *what, unsigned interval_ms) {
  pthread_mutex_lock(&f->mu);
  if (what == NULL)
    f->trickle[0] = '\0';
  else
    copy(f->trickle, sizeof f->trickle, what, strlen(what));
  f->trickle_ms = interval_ms;
  pthread_mutex_unlock(&f->mu);
}

void fake_upnp_set_chunked(fake_upnp_t *f, int on) {
  pthread_mutex_lock(&f->mu);
  f->chunked = on;
  pthread_mutex_unlock(&f->mu);
}

void fake_upnp_set_big_description(fake_upnp_t *f, size_t size, int with_length) {
  pthread_mutex_lock(&f->mu);
  f->big_size = size;
  f->big_length = with_length;
  pthread_mutex_unlock(&f->mu);
}

void fake_upnp_set_description(fake_upnp_t *f, const char *xml) {
  pthread_mutex_lock(&f->mu);
  f->desc = xml != NULL ? xml : f->profile_desc;
  pthread_mutex_unlock(&f->mu);
}

void fake_upnp_set_uptime_element(fake_upnp_t *f, const char *name) {
  pthread_mutex_lock(&f->mu);
  copy(f->uptime_elt, sizeof f->uptime_elt, name, strlen(name));
  pthread_mutex_unlock(&f->mu);
}

void fake_upnp_set_delay_ms(fake_upnp_t *f, unsigned ms, const char *action) {
  pthread_mutex_lock(&f->mu);
  f->delay_ms = ms;
  if (action == NULL)
    f->delay_action[0] = '\0';
  else
    copy(f->delay_action, sizeof f->delay_action, action, strlen(action));
  pthread_mutex_unlock(&f->mu);
}

int fake_upnp_add_entry(fake_upnp_t *f, const char *proto, uint16_t ext_port, const char *client,
                        uint16_t int_port, const char *desc, uint32_t lease) {
  pthread_mutex_lock(&f->mu);
  int rc = -1;
  if (f->n_entries < FAKE_UPNP_MAX_ENTRIES) {
    fake_upnp_entry_t *e = &f->entries[f->n_entries++];
    memset(e, 0, sizeof *e);
    copy(e->proto, sizeof e->proto, proto, strlen(proto));
    e->ext_port = ext_port;
    copy(e->client, sizeof e->client, client, strlen(client));
    e->int_port = int_port;
    copy(e->desc, sizeof e->desc, desc, strlen(desc));
    e->lease = lease;
    e->enabled = 1;
    rc = 0;
  }
  pthread_mutex_unlock(&f->mu);
  return rc;
}

size_t fake_upnp_entries(fake_upnp_t *f, fake_upnp_entry_t *out, size_t cap) {
  pthread_mutex_lock(&f->mu);
  size_t n = f->n_entries;
  for (size_t i = 0; i < n && i < cap; i++)
    out[i] = f->entries[i];
  pthread_mutex_unlock(&f->mu);
  return n;
}

int fake_upnp_find(fake_upnp_t *f, const char *proto, uint16_t ext_port, fake_upnp_entry_t *out) {
  pthread_mutex_lock(&f->mu);
  fake_upnp_entry_t *e = find_entry(f, proto, ext_port);
  if (e != NULL && out != NULL)
    *out = *e;
  pthread_mutex_unlock(&f->mu);
  return e != NULL;
}

size_t fake_upnp_requests(fake_upnp_t *f, fake_upnp_request_t *out, size_t cap) {
  pthread_mutex_lock(&f->mu);
  size_t n = f->n_log;
  for (size_t i = 0; i < n && i < cap && i < FAKE_UPNP_LOG_SIZE; i++)
    out[i] = f->log[i];
  pthread_mutex_unlock(&f->mu);
  return n;
}

unsigned fake_upnp_count(fake_upnp_t *f, const char *action) {
  pthread_mutex_lock(&f->mu);
  unsigned n = 0;
  for (size_t i = 0; i < f->n_log && i < FAKE_UPNP_LOG_SIZE; i++)
    if (action == NULL || strcmp(f->log[i].action, action) == 0)
      n++;
  pthread_mutex_unlock(&f->mu);
  return n;
}

unsigned fake_upnp_pending(fake_upnp_t *f) {
  pthread_mutex_lock(&f->mu);
  unsigned n = f->pending;
  pthread_mutex_unlock(&f->mu);
  return n;
}

void fake_upnp_get_stats(fake_upnp_t *f, fake_upnp_stats_t *out) {
  pthread_mutex_lock(&f->mu);
  *out = f->stats;
  pthread_mutex_unlock(&f->mu);
}

size_t fake_upnp_search_targets(fake_upnp_t *f, char (*out)[128], size_t cap) {
  pthread_mutex_lock(&f->mu);
  size_t n = f->n_targets_seen;
  for (size_t i = 0; i < n && i < cap; i++)
    memcpy(out[i], f->targets_seen[i], 128);
  pthread_mutex_unlock(&f->mu);
  return n;
}
