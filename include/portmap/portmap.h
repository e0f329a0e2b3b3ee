/* SPDX-License-Identifier: MIT */
/**
 * @file portmap.h
 * libportmap: get a working port forward from whatever the gateway speaks
 * (PCP, RFC 6887; NAT-PMP, RFC 6886; UPnP-IGD).
 *
 * The public interface. Clean as C99 and as C++; no socket headers needed.
 *
 * Model: a client (portmap_client_t) owns sockets and one shared scheduler.
 * Mappings (portmap_mapping_t) are created on a client and report every
 * state change through their callback. The client is driven from the
 * application's event loop (portmap_fds(), portmap_timeout_ms(),
 * portmap_process()), from a thread of ours (portmap_thread_start()), or by
 * the blocking convenience call portmap_map_sync().
 *
 * Callbacks run only from portmap_process() (and so from our thread in
 * thread mode) and never while an internal lock is held.
 *
 * Event-loop contract (the c-ares ARES_OPT_SOCK_STATE_CB / curl multi
 * CURLMOPT_SOCKETFUNCTION + TIMERFUNCTION pattern). Either:
 *  - poll: after every library call, watch portmap_fds() for reading and
 *    wake after portmap_timeout_ms(); call portmap_process() on either; or
 *  - callbacks: set portmap_config_t.fd_cb and .timer_cb. The library then
 *    tells the loop about every fd to start or stop watching (sockets open
 *    lazily and are replaced when the gateway changes) and every change of
 *    the next deadline, as it happens; the loop calls portmap_process() when
 *    a watched fd is readable or the timer fires. Nothing is re-read.
 * One of the fds is the client's wake pipe: a call made from another
 * thread (portmap_map(), revoke, ...) makes it readable, so the loop's
 * thread runs portmap_process() and picks up the change. With callbacks,
 * fd_cb and timer_cb run only on the loop's thread: the one that created
 * the client or last called portmap_process(); calls from other threads
 * only wake it. An fd is reported removed (fd_cb(fd, 0)) before it is
 * closed.
 */
#ifndef PORTMAP_PORTMAP_H
#define PORTMAP_PORTMAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks the library's exported functions (every other symbol is hidden). */
#if defined(_WIN32)
#define PORTMAP_API
#elif defined(__GNUC__)
#define PORTMAP_API __attribute__((visibility("default")))
#else
#define PORTMAP_API
#endif

/** Major version: changes when the API or ABI breaks (and with it the SONAME). */
#define PORTMAP_VERSION_MAJOR 1
/** Minor version: additions that keep old programs working. */
#define PORTMAP_VERSION_MINOR 0
/** Patch version: fixes only. */
#define PORTMAP_VERSION_PATCH 0
/** The version as one number, 0xMMmmpp, for comparisons in the preprocessor. */
#define PORTMAP_VERSION_HEX                                                                        \
  ((PORTMAP_VERSION_MAJOR << 16) | (PORTMAP_VERSION_MINOR << 8) | PORTMAP_VERSION_PATCH)
/** The version as text. */
#define PORTMAP_VERSION_STR "1.0.0"

/** Status of a library call. Numbers are stable and never reused. */
typedef enum portmap_status {
  PORTMAP_OK = 0,                  /**< success */
  PORTMAP_ERR_INVALID = 1,         /**< invalid argument (NULL, bad string) */
  PORTMAP_ERR_PORT = 2,            /**< port invalid for the protocol/opcode */
  PORTMAP_ERR_LIFETIME = 3,        /**< lifetime out of range */
  PORTMAP_ERR_OPTION = 4,          /**< option not allowed for this request */
  PORTMAP_ERR_THIRD_PARTY = 5,     /**< THIRD_PARTY equals our own address */
  PORTMAP_ERR_ADDRESS = 6,         /**< address unparsable or wrong family */
  PORTMAP_ERR_NOMEM = 7,           /**< out of memory */
  PORTMAP_ERR_SYSTEM = 8,          /**< a system call failed (see errno) */
  PORTMAP_ERR_NO_GATEWAY = 9,      /**< no default gateway found */
  PORTMAP_ERR_TIMEOUT = 10,        /**< nothing answered in time */
  PORTMAP_ERR_REFUSED = 11,        /**< the gateway refused (see gateway_result) */
  PORTMAP_ERR_UNSUPPORTED = 12,    /**< the backend cannot express this request */
  PORTMAP_ERR_NATPMP_GATEWAY = 13, /**< PCP answered UNSUPP_VERSION: a NAT-PMP gateway */
  PORTMAP_ERR_RECURSIVE = 14,      /**< call not allowed from inside a callback */
  PORTMAP_ERR_STATE = 15,          /**< object in the wrong state for this call */
  PORTMAP_ERR_NO_BACKEND = 16,     /**< no enabled backend is usable */
  PORTMAP_ERR_CANCELLED = 17,      /**< the client was destroyed */
  PORTMAP_ERR_UNREACHABLE = 18,    /**< the gateway port is closed (ICMP unreachable) */
  PORTMAP_ERR_NO_IGD = 19          /**< UPnP devices answered, none with a WAN connection service */
} portmap_status_t;

/** Backends. Values are bits so a set of them fits in a mask. */
typedef enum portmap_backend {
  PORTMAP_BACKEND_NONE = 0,
  PORTMAP_BACKEND_PCP = 1,
  PORTMAP_BACKEND_NATPMP = 2,
  PORTMAP_BACKEND_UPNP = 4
} portmap_backend_t;

/** Mask of every backend. */
#define PORTMAP_BACKEND_ALL 7u

/** Named IANA protocol numbers; any other number 1-255 is accepted by PCP. */
#define PORTMAP_PROTO_ALL 0  /**< PCP only: every protocol, internal port 0 */
#define PORTMAP_PROTO_TCP 6  /**< TCP */
#define PORTMAP_PROTO_UDP 17 /**< UDP */

/** Events delivered to a mapping's callback. */
typedef enum portmap_event {
  PORTMAP_EVENT_MAPPED = 1,  /**< first success */
  PORTMAP_EVENT_RENEWED = 2, /**< a renewal succeeded, nothing changed */
  PORTMAP_EVENT_CHANGED = 3, /**< external address, port or backend changed */
  PORTMAP_EVENT_LOST = 4,    /**< the mapping was lost; we keep retrying */
  PORTMAP_EVENT_FAILED = 5,  /**< final: gave up; info.status (info.tried: per backend) says why */
  PORTMAP_EVENT_DELETED = 6  /**< final: deleted (revoked or client destroyed) */
} portmap_event_t;

/** Log levels, most severe first. */
typedef enum portmap_log_level {
  PORTMAP_LOG_ERROR = 0,
  PORTMAP_LOG_WARN = 1,
  PORTMAP_LOG_INFO = 2,
  PORTMAP_LOG_DEBUG = 3
} portmap_log_level_t;

/** An IP address in 16 octets; IPv4 is IPv4-mapped (\::ffff:a.b.c.d). */
typedef struct portmap_addr {
  uint8_t bytes[16]; /**< network order */
} portmap_addr_t;

/** Text form of an address: large enough for any IPv6 address. */
#define PORTMAP_ADDRSTRLEN 46

/** PCP FILTER option (RFC 6887 section 13.3). */
typedef struct portmap_filter {
  const char *remote_address; /**< NULL or "" = any (with prefix_length 0) */
  uint8_t prefix_length;      /**< bits of the address (IPv4: 0-32, IPv6: 0-128) */
  uint16_t remote_port;       /**< 0 = all ports */
} portmap_filter_t;

/** Request flags. */
#define PORTMAP_FLAG_ONCE 1u           /**< map once, do not renew */
#define PORTMAP_FLAG_PREFER_FAILURE 2u /**< PCP PREFER_FAILURE (MAP only) */
/** Treat DESCRIPTION as mandatory: do not retry without it (see Q26). */
#define PORTMAP_FLAG_DESCRIPTION_REQUIRED 4u
/**
 * Send a delete for this mapping (PCP: lifetime 0 with the nonce from
 * req.nonce) and report DELETED or FAILED. Used to remove a mapping made
 * by an earlier process.
 */
#define PORTMAP_FLAG_DELETE 8u

/** Maximum number of FILTER options in one request. */
#define PORTMAP_MAX_FILTERS 8
/** Maximum length in octets of a description. */
#define PORTMAP_MAX_DESCRIPTION 128

/** What to map. Initialise with portmap_request_init(). Strings are copied. */
typedef struct portmap_request {
  int protocol;                 /**< IANA number 0-255; PORTMAP_PROTO_TCP/UDP */
  uint16_t internal_port;       /**< required unless protocol is 0 */
  uint16_t external_port;       /**< suggested external port, 0 = none */
  const char *external_address; /**< suggested external address, NULL = none */
  uint32_t lifetime;            /**< requested lifetime in seconds (1-86400); 0 = default 7200 */
  unsigned flags;               /**< PORTMAP_FLAG_* */
  const char *description;      /**< NULL = none; UTF-8, at most PORTMAP_MAX_DESCRIPTION */
  /* PCP extras */
  const char *peer_address;        /**< non-NULL makes this a PEER request */
  uint16_t peer_port;              /**< required with peer_address */
  const char *third_party;         /**< THIRD_PARTY internal address, NULL = none */
  const portmap_filter_t *filters; /**< FILTER options */
  size_t n_filters;                /**< number of filters */
  const uint8_t *nonce;            /**< 12 octets to reuse (delete after a restart), NULL = fresh */
  int ipv6;                        /**< 1 = map an IPv6 internal address, 0 = IPv4 */
} portmap_request_t;

/** Where a mapping stands, for a user interface (portmap_info_t.state). */
typedef enum portmap_mapping_state {
  PORTMAP_STATE_PROBING = 1,  /**< finding out which protocol the gateway speaks */
  PORTMAP_STATE_MAPPING = 2,  /**< asking the gateway for it */
  PORTMAP_STATE_MAPPED = 3,   /**< held, and renewed as its lifetime requires */
  PORTMAP_STATE_LOST = 4,     /**< lost or refused for now: retrying */
  PORTMAP_STATE_DELETING = 5, /**< a delete was asked for and is under way */
  PORTMAP_STATE_ENDED = 6,    /**< final: deleted, failed or detached */
  PORTMAP_STATE_RENEWING = 7  /**< held, and a renewal is under way */
} portmap_mapping_state_t;

/** Entries of portmap_info_t.tried: PCP, NAT-PMP and UPnP, in that order. */
#define PORTMAP_INFO_BACKENDS 3

/**
 * What one backend's last attempt at a mapping came to (portmap_info_t.tried),
 * so that an application can say "PCP: port unreachable; UPnP: no answer".
 */
typedef struct portmap_backend_result {
  portmap_backend_t backend; /**< PORTMAP_BACKEND_PCP, _NATPMP or _UPNP */
  int tried; /**< 1 when it was asked (by the probe or for this mapping), 0 not tried */
  /** Outcome of the last attempt: PORTMAP_OK, or why it did not work (TIMEOUT, UNREACHABLE,
   * REFUSED...). Not tried: PORTMAP_ERR_NO_BACKEND when the backend is not enabled,
   * PORTMAP_ERR_UNSUPPORTED when it cannot express the request, else PORTMAP_OK. */
  portmap_status_t status;
  int gateway_result; /**< the gateway's result code (PCP, NAT-PMP result, UPnP error), -1 none */
} portmap_backend_result_t;

/** State of a mapping, as passed to callbacks and by portmap_mapping_info(). */
typedef struct portmap_info {
  portmap_backend_t backend;       /**< backend serving (or trying) it */
  int protocol;                    /**< IANA protocol number, as requested */
  uint16_t internal_port;          /**< as requested */
  portmap_addr_t internal_address; /**< the address the mapping points at (ours, or THIRD_PARTY) */
  portmap_addr_t external_address; /**< all zeros when not known */
  char external_address_str[PORTMAP_ADDRSTRLEN]; /**< external_address as text */
  uint16_t external_port;                        /**< external port, 0 when not known */
  uint32_t lifetime;                             /**< granted lifetime in seconds */
  uint32_t expires_in_ms;                        /**< time left before the mapping expires */
  int external_is_private;       /**< 1 when the external address is private / CGN (Q17) */
  int gateway_result;            /**< last result code from the gateway, -1 none */
  portmap_status_t status;       /**< with FAILED/LOST: why */
  uint8_t nonce[12];             /**< PCP mapping nonce */
  int is_peer;                   /**< 1 for a PCP PEER mapping */
  portmap_mapping_state_t state; /**< where it stands */
  /**
   * Per backend (PCP, NAT-PMP, UPnP), its last attempt at this mapping: with FAILED and
   * LOST, why each backend did not work; status above is the most telling of them.
   */
  portmap_backend_result_t tried[PORTMAP_INFO_BACKENDS];
} portmap_info_t;

/** Counters of what the client dropped (all network input is hostile). */
typedef struct portmap_stats {
  uint64_t received;        /**< datagrams read */
  uint64_t malformed;       /**< dropped: failed to parse */
  uint64_t spoofed;         /**< dropped: wrong source address or port */
  uint64_t unmatched;       /**< dropped: matched no outstanding request or mapping */
  uint64_t sent;            /**< datagrams sent */
  uint64_t retransmissions; /**< requests sent again after no answer */
  uint64_t epoch_invalid;   /**< responses that showed the server lost state */
} portmap_stats_t;

/** A client: sockets, one scheduler, and its mappings (opaque). */
typedef struct portmap_client portmap_client_t;
/** A mapping made on a client (opaque handle). */
typedef struct portmap_mapping portmap_mapping_t;

/** Monotonic clock in milliseconds (injectable for tests). */
typedef uint64_t (*portmap_clock_cb)(void *user);
/** Fill buf with len random octets from a CSPRNG; return 0 on success. */
typedef int (*portmap_random_cb)(void *buf, size_t len, void *user);
/**
 * Log sink. msg is valid only during the call. It runs outside the
 * library's locks, on whichever thread was in the library when the message
 * was made. It may call the library, except what would free the client or
 * run its loop: portmap_client_free(), portmap_process(), the *_sync()
 * helpers and portmap_thread_stop() return PORTMAP_ERR_RECURSIVE there
 * (the same holds for the trace sink, fd_cb and timer_cb).
 */
typedef void (*portmap_log_cb)(portmap_log_level_t level, const char *msg, void *user);
/**
 * Packet trace sink: every datagram sent (sent=1) or received (sent=0),
 * with its peer address as text and port.
 */
typedef void (*portmap_trace_cb)(int sent, const char *peer, uint16_t port, const uint8_t *data,
                                 size_t len, void *user);
/**
 * Mapping callback: every state change, and exactly one final
 * event (FAILED or DELETED), after which the mapping is over: calls on its
 * handle return PORTMAP_ERR_STATE (see portmap_map() on handles). info is
 * valid only during the call. Calling portmap_mapping_revoke() from here is
 * allowed; portmap_client_free() is not.
 */
typedef void (*portmap_mapping_cb)(portmap_mapping_t *mapping, portmap_event_t event,
                                   const portmap_info_t *info, void *user);

/** For portmap_fd_cb: watch the fd for reading. */
#define PORTMAP_FD_READ 1
/**
 * Event-loop callback: start watching fd (events = PORTMAP_FD_READ) or stop
 * (events = 0; the fd is still open during the call and is closed soon
 * after). Runs outside the library's locks on the loop's thread; it may
 * call the library, with the exceptions of portmap_log_cb.
 */
typedef void (*portmap_fd_cb)(int fd, int events, void *user);
/**
 * Event-loop callback: the next deadline changed. Call portmap_process()
 * after timeout_ms milliseconds (0: as soon as possible; -1: no timer
 * needed). Each call replaces the previous deadline.
 */
typedef void (*portmap_timer_cb)(int timeout_ms, void *user);

/** Events about the client as a whole (portmap_config_t.client_cb). */
typedef enum portmap_client_event {
  PORTMAP_CLIENT_EXTERNAL_ADDRESS = 1, /**< the gateway's external address changed */
  PORTMAP_CLIENT_BACKEND = 2,          /**< the protocol new mappings use changed */
  PORTMAP_CLIENT_GATEWAY_LOST = 3,     /**< no default gateway any more */
  PORTMAP_CLIENT_GATEWAY_FOUND = 4,    /**< a (new) default gateway is in use */
  PORTMAP_CLIENT_SHUTDOWN = 5          /**< portmap_client_shutdown() is done: free at once */
} portmap_client_event_t;

/** What the client knows, as passed to client_cb and by portmap_client_state(). */
typedef struct portmap_client_state {
  portmap_backend_t backend;       /**< the protocol new mappings use; NONE when none (yet) */
  portmap_addr_t external_address; /**< the gateway's external address; all zeros when not known */
  char external_address_str[PORTMAP_ADDRSTRLEN]; /**< external_address as text, "" when not known */
  int external_is_private;          /**< 1 when it is private / CGN (double NAT, Q17) */
  char gateway[PORTMAP_ADDRSTRLEN]; /**< the gateway in use as text, "" when none */
  int shut_down;                    /**< 1 once portmap_client_shutdown() has finished */
} portmap_client_state_t;

/**
 * Client callback: a change that concerns the client as a whole (not one
 * mapping). Runs like the mapping callbacks: from portmap_process(), outside
 * the library's locks. state is valid only during the call.
 */
typedef void (*portmap_client_cb)(portmap_client_t *client, portmap_client_event_t event,
                                  const portmap_client_state_t *state, void *user);

/**
 * Allocator hook (portmap_config_t.malloc_cb): a block of at least size
 * octets, or NULL when memory is short. size is never 0. Called from any
 * thread that is in the library, and from the UPnP worker thread: it must
 * be thread-safe. user is portmap_config_t.alloc_user.
 */
typedef void *(*portmap_malloc_cb)(size_t size, void *user);
/**
 * Allocator hook (portmap_config_t.realloc_cb): resize ptr, a block from
 * this allocator (never NULL), to size octets (never 0), as realloc()
 * does; NULL when memory is short, ptr then left as it was.
 */
typedef void *(*portmap_realloc_cb)(void *ptr, size_t size, void *user);
/**
 * Allocator hook (portmap_config_t.free_cb): give back ptr, a block from
 * malloc_cb or realloc_cb (never NULL).
 */
typedef void (*portmap_free_cb)(void *ptr, void *user);

/**
 * Client configuration. Initialise with portmap_config_init(). Strings are
 * copied. portmap_client_new() checks every value: each *_ms at most
 * INT32_MAX, pcp_irt_ms and natpmp_irt_ms not 0, pcp_mrt_ms not below
 * pcp_irt_ms, natpmp_max_tries at most 32, ssdp_multicast 0 or 1,
 * announce_port -1 to 65535, malloc_cb, realloc_cb and free_cb all set or
 * none; anything else is PORTMAP_ERR_INVALID.
 */
typedef struct portmap_config {
  const char *gateway;         /**< gateway address; NULL = default router */
  const char *local_address;   /**< local address; NULL = learnt by connect() */
  unsigned backends;           /**< mask of PORTMAP_BACKEND_*; 0 = all */
  uint32_t pcp_irt_ms;         /**< PCP initial retransmission time (3000) */
  uint32_t pcp_mrt_ms;         /**< PCP maximum retransmission time (1024000) */
  uint32_t pcp_mrc;            /**< PCP maximum retransmission count, 0 = none */
  uint32_t pcp_mrd_ms;         /**< PCP maximum retransmission duration, 0 = none */
  uint32_t request_timeout_ms; /**< give up on a new mapping after this, 0 = never (portmap_map) */
  uint32_t destroy_timeout_ms; /**< bound on the wait for deletes in portmap_client_free and
                                  portmap_client_shutdown (2000); more for many mappings */
  uint32_t probe_timeout_ms;   /**< probe budget (500): how long each protocol asked may answer */
  uint16_t
      server_port;   /**< PCP server port (5351), for tests; NAT-PMP always uses 5351 (libnatpmp) */
  int announce_port; /**< listener port for unsolicited messages: 0 = 5350, -1 = off */
  uint32_t natpmp_irt_ms;        /**< NAT-PMP first retransmission time (250), doubling */
  uint32_t natpmp_max_tries;     /**< NAT-PMP sends per request (9) */
  uint16_t ssdp_port;            /**< SSDP port of the gateway (1900); for tests */
  int ssdp_multicast;            /**< also multicast M-SEARCH (1); never to a loopback gateway */
  uint32_t upnp_timeout_ms;      /**< bound on each UPnP HTTP/SOAP exchange (2000) */
  portmap_log_cb log_cb;         /**< NULL = silent */
  void *log_user;                /**< passed to log_cb */
  portmap_log_level_t log_level; /**< most verbose level passed to log_cb */
  portmap_trace_cb trace_cb;     /**< NULL = none */
  void *trace_user;              /**< passed to trace_cb */
  portmap_clock_cb clock_cb;     /**< NULL = CLOCK_MONOTONIC */
  void *clock_user;              /**< passed to clock_cb */
  portmap_random_cb random_cb;   /**< NULL = getrandom(GRND_NONBLOCK): EAGAIN at early boot */
  void *random_user;             /**< passed to random_cb */
  portmap_fd_cb fd_cb; /**< NULL = the application polls portmap_fds() (see the contract above) */
  void *fd_user;       /**< passed to fd_cb */
  portmap_timer_cb timer_cb;   /**< NULL = the application asks portmap_timeout_ms() */
  void *timer_user;            /**< passed to timer_cb */
  portmap_client_cb client_cb; /**< NULL = none */
  void *client_user;           /**< passed to client_cb */
  /**
   * Allocator for every block the client allocates (a program built with
   * a header that lacks these members gets the system allocator; see "ABI
   * that can grow" in README.md). malloc_cb, realloc_cb and free_cb are
   * set together or not at all (a partial set is PORTMAP_ERR_INVALID);
   * NULL = malloc(), realloc(), free(). They must
   * stay usable until every block is given back: when portmap_client_free()
   * returns, except for a UPnP worker thread still sending deletes the
   * gateway had not confirmed by destroy_timeout_ms, which frees its own
   * blocks as it leaves (at most 17 calls of upnp_timeout_ms + 5 s later).
   * Not through the hook: what miniupnpc and the C library allocate inside
   * their own calls (README.md, "Memory").
   */
  portmap_malloc_cb malloc_cb;
  portmap_realloc_cb realloc_cb; /**< NULL = realloc(); set with malloc_cb */
  portmap_free_cb free_cb;       /**< NULL = free(); set with malloc_cb */
  void *alloc_user;              /**< passed to malloc_cb, realloc_cb and free_cb */
} portmap_config_t;

/** What a probe learnt about one protocol. */
typedef struct portmap_probe_backend {
  int available;          /**< 1 it answered and works, 0 not */
  portmap_status_t error; /**< why not: TIMEOUT, UNREACHABLE, REFUSED, NATPMP_GATEWAY... */
  int gateway_result;     /**< the gateway's result code, -1 none */
  uint32_t rtt_ms;        /**< first answer's round-trip time */
  char external_address[PORTMAP_ADDRSTRLEN]; /**< "" when not known */
  int external_is_private;                   /**< 1 private / CGN (Q17) */
  uint32_t epoch;                            /**< PCP / NAT-PMP seconds since start of epoch */
  /* UPnP only */
  char location[256];         /**< root description URL */
  char device_name[128];      /**< friendlyName */
  char service_type[128];     /**< WAN connection service in use */
  int igd_version;            /**< 1 or 2 */
  char connection_status[32]; /**< GetStatusInfo: Connected, ... */
  char control_url[256];      /**< control URL of that service */
} portmap_probe_backend_t;

/** The outcome of a probe of the gateway for all three protocols at once. */
typedef struct portmap_probe_result {
  char gateway[PORTMAP_ADDRSTRLEN];       /**< the gateway asked, as text */
  char local_address[PORTMAP_ADDRSTRLEN]; /**< our address towards it, as text */
  portmap_probe_backend_t pcp;            /**< what PCP said */
  portmap_probe_backend_t natpmp;         /**< what NAT-PMP said */
  portmap_probe_backend_t upnp;           /**< what UPnP-IGD said */
  portmap_backend_t selected;             /**< the backend new mappings use, NONE if none works */
  uint32_t elapsed_ms;                    /**< how long the probe took */
} portmap_probe_result_t;

/**
 * Fill cfg with defaults.
 * ABI: a macro over portmap_config_init_sized(), which also takes the size of
 * the struct the program was built with, so that a newer library keeps
 * working with an older program (see "ABI that can grow" in README.md).
 */
#define portmap_config_init(cfg) portmap_config_init_sized((cfg), sizeof(portmap_config_t))
/** The ABI entry point of portmap_config_init(): size is sizeof(portmap_config_t). */
PORTMAP_API void portmap_config_init_sized(portmap_config_t *cfg, size_t size);

/**
 * Fill req with defaults (TCP, no port, default lifetime, renewed until revoked).
 * ABI: a macro over portmap_request_init_sized(), which also takes the size of
 * the struct the program was built with, so that a newer library keeps
 * working with an older program (see "ABI that can grow" in README.md).
 */
#define portmap_request_init(req) portmap_request_init_sized((req), sizeof(portmap_request_t))
/** The ABI entry point of portmap_request_init(): size is sizeof(portmap_request_t). */
PORTMAP_API void portmap_request_init_sized(portmap_request_t *req, size_t size);

/**
 * Create a client (cfg NULL: the defaults of portmap_config_init()).
 * Every value of cfg is checked: a timeout, size or count out of its
 * range is PORTMAP_ERR_INVALID, never wrapped or clamped.
 * @return PORTMAP_OK; PORTMAP_ERR_INVALID (NULL out or bad config),
 * PORTMAP_ERR_ADDRESS (gateway/local address unparsable), PORTMAP_ERR_NOMEM,
 * PORTMAP_ERR_SYSTEM (socket setup failed).
 * A missing default gateway is not an error here: mappings then fail with
 * PORTMAP_ERR_NO_GATEWAY.
 * ABI: a macro over portmap_client_new_sized(), which also takes the size of
 * the struct the program was built with, so that a newer library keeps
 * working with an older program (see "ABI that can grow" in README.md).
 */
#define portmap_client_new(cfg, out)                                                               \
  portmap_client_new_sized((cfg), sizeof(portmap_config_t), (out))
/** The ABI entry point of portmap_client_new(): cfg_size is sizeof(portmap_config_t). */
PORTMAP_API portmap_status_t portmap_client_new_sized(const portmap_config_t *cfg, size_t cfg_size,
                                                      portmap_client_t **out);

/**
 * Destroy a client: stop the thread if running, delete every mapping on the
 * gateway (waiting at most destroy_timeout_ms for confirmations), deliver
 * each mapping's final event, free everything. Accepts NULL.
 * The deletes go out like every request, a bounded number in flight per
 * gateway (64) and the rest as answers come back, so none is lost to a full
 * socket; with many mappings the wait takes about one round trip to the
 * gateway per 64 of them (and a retransmission time, 3 s for PCP, for any
 * that is lost): an application holding thousands of mappings on a slow
 * gateway needs a larger destroy_timeout_ms than the default 2 s.
 * @return PORTMAP_OK; PORTMAP_ERR_RECURSIVE when called from a callback
 * (nothing is freed then); PORTMAP_ERR_TIMEOUT when some delete was not
 * confirmed in time (everything is freed anyway).
 */
PORTMAP_API portmap_status_t portmap_client_free(portmap_client_t *client);

/**
 * Begin an orderly shutdown that never blocks: no new mappings are taken,
 * every mapping is deleted on the gateway, and the loop goes on as usual.
 * When every mapping has had its final event (at most destroy_timeout_ms
 * later: what is not confirmed by then ends with FAILED and
 * PORTMAP_ERR_CANCELLED), client_cb hears PORTMAP_CLIENT_SHUTDOWN, after
 * which portmap_client_free() returns at once.
 * @return PORTMAP_OK; PORTMAP_ERR_INVALID (NULL); PORTMAP_ERR_STATE (already
 * shutting down).
 */
PORTMAP_API portmap_status_t portmap_client_shutdown(portmap_client_t *client);

/**
 * What the client knows now: the protocol in use, the external address
 * (cached: never blocks, never asks the gateway), the gateway.
 * @return PORTMAP_OK; PORTMAP_ERR_INVALID (NULL argument).
 * ABI: a macro over portmap_client_state_sized() (see "ABI that can grow" in README.md).
 */
#define portmap_client_state(client, state)                                                        \
  portmap_client_state_sized((client), (state), sizeof(portmap_client_state_t))
/** The ABI entry point of portmap_client_state(): size is sizeof(portmap_client_state_t). */
PORTMAP_API portmap_status_t portmap_client_state_sized(portmap_client_t *client,
                                                        portmap_client_state_t *state, size_t size);

/**
 * Start a mapping. Returns at once; the callback reports the outcome.
 * With portmap_config_t.request_timeout_ms 0 (the default) it never gives
 * up while the gateway answers nothing or refuses for a reason that may pass
 * (no backend works, port closed, a transient refusal such as PCP
 * NETWORK_FAILURE or NAT-PMP result 3): it reports LOST once (info.tried
 * says why per backend), asks the gateway again after 2 s, the spacing
 * doubling up to 5 min (each delay +-10 %, from random_cb), and reports
 * MAPPED (CHANGED if it was mapped before) once a backend works. A refusal
 * of the request itself, a PORTMAP_FLAG_ONCE or PORTMAP_FLAG_DELETE request,
 * and any request with request_timeout_ms > 0 end with FAILED instead.
 * @return PORTMAP_OK; PORTMAP_ERR_INVALID, PORTMAP_ERR_PORT,
 * PORTMAP_ERR_LIFETIME, PORTMAP_ERR_OPTION, PORTMAP_ERR_THIRD_PARTY,
 * PORTMAP_ERR_ADDRESS (bad argument); PORTMAP_ERR_UNSUPPORTED (no enabled
 * backend can express the request); PORTMAP_ERR_NOMEM;
 * PORTMAP_ERR_NO_GATEWAY; PORTMAP_ERR_NO_BACKEND; PORTMAP_ERR_SYSTEM;
 * PORTMAP_ERR_STATE (portmap_client_free has begun).
 *
 * Handles. With out not NULL, *out is a handle the program holds: every
 * call on it is safe from any thread, also after the mapping's final event
 * (they then return PORTMAP_ERR_STATE), until the program gives it back
 * with portmap_mapping_release() or the client is freed. With out NULL the
 * program holds nothing: the mapping's memory goes with its final event,
 * and the handle passed to the callback is valid only during the call.
 *
 * ABI: a macro over portmap_map_sized(), which also takes the size of
 * the struct the program was built with, so that a newer library keeps
 * working with an older program (see "ABI that can grow" in README.md).
 */
#define portmap_map(client, req, cb, user, out)                                                    \
  portmap_map_sized((client), (req), sizeof(portmap_request_t), (cb), (user), (out))
/** The ABI entry point of portmap_map(): req_size is sizeof(portmap_request_t). */
PORTMAP_API portmap_status_t portmap_map_sized(portmap_client_t *client,
                                               const portmap_request_t *req, size_t req_size,
                                               portmap_mapping_cb cb, void *user,
                                               portmap_mapping_t **out);

/**
 * Delete a mapping on the gateway. The DELETED (or, if the gateway never
 * confirms, FAILED) event follows from portmap_process().
 * @return PORTMAP_OK; PORTMAP_ERR_INVALID (NULL); PORTMAP_ERR_STATE (already
 * revoked, detached or ended).
 */
PORTMAP_API portmap_status_t portmap_mapping_revoke(portmap_mapping_t *mapping);

/**
 * Forget a mapping without deleting it on the gateway: it is no longer
 * renewed and no more events are delivered. For tools that create a
 * mapping and exit (its nonce lets a later process delete it).
 * @return PORTMAP_OK; PORTMAP_ERR_INVALID (NULL); PORTMAP_ERR_STATE (already
 * detached or ended).
 */
PORTMAP_API portmap_status_t portmap_mapping_detach(portmap_mapping_t *mapping);

/**
 * Give back a handle obtained from portmap_map() or portmap_map_sync().
 * The mapping itself goes on (revoke or detach it first to end it); the
 * handle must not be used again. Handles not given back are freed with the
 * client. Accepts NULL.
 */
PORTMAP_API void portmap_mapping_release(portmap_mapping_t *mapping);

/**
 * Set the callback that receives the mapping's events from now on (for
 * instance after portmap_map_sync(), which leaves the mapping without one).
 * @return PORTMAP_OK; PORTMAP_ERR_INVALID (NULL mapping); PORTMAP_ERR_STATE
 * (the mapping has ended).
 */
PORTMAP_API portmap_status_t portmap_mapping_set_callback(portmap_mapping_t *mapping,
                                                          portmap_mapping_cb cb, void *user);

/**
 * Copy a mapping's current state.
 * @return PORTMAP_OK; PORTMAP_ERR_INVALID (NULL argument); PORTMAP_ERR_STATE
 * (the mapping has ended: its final event has been queued, or it was
 * detached).
 * ABI: a macro over portmap_mapping_info_sized(), which also takes the size of
 * the struct the program was built with, so that a newer library keeps
 * working with an older program (see "ABI that can grow" in README.md).
 */
#define portmap_mapping_info(mapping, info)                                                        \
  portmap_mapping_info_sized((mapping), (info), sizeof(portmap_info_t))
/** The ABI entry point of portmap_mapping_info(): size is sizeof(portmap_info_t). */
PORTMAP_API portmap_status_t portmap_mapping_info_sized(portmap_mapping_t *mapping,
                                                        portmap_info_t *info, size_t size);

/**
 * File descriptors the client wants watched for reading, the wake pipe
 * first. Writes at most cap fds and returns how many there are in all
 * (call again with a bigger array if that is more than cap). The set
 * changes as sockets open and close: re-read it after every call into the
 * library, or use portmap_config_t.fd_cb instead.
 */
PORTMAP_API size_t portmap_fds(portmap_client_t *client, int *fds, size_t cap);

/** Milliseconds until portmap_process() must be called: -1 none pending, 0 now. */
PORTMAP_API int portmap_timeout_ms(portmap_client_t *client);

/**
 * Read whatever arrived on the client's fds (never blocks), run every due
 * timer, and deliver callbacks. The calling thread becomes the loop's
 * thread for fd_cb and timer_cb.
 * @return PORTMAP_OK; PORTMAP_ERR_INVALID (NULL); PORTMAP_ERR_RECURSIVE (from a callback).
 */
PORTMAP_API portmap_status_t portmap_process(portmap_client_t *client);

/**
 * Run the client on a thread of ours (built on the calls above plus a
 * wake pipe). Every other call stays safe to make from any thread.
 * @return PORTMAP_OK; PORTMAP_ERR_STATE (already running, or the client
 * has fd_cb / timer_cb: it belongs to the application's loop);
 * PORTMAP_ERR_SYSTEM.
 */
PORTMAP_API portmap_status_t portmap_thread_start(portmap_client_t *client);

/**
 * Stop the thread started by portmap_thread_start() and join it.
 * @return PORTMAP_OK; PORTMAP_ERR_STATE (not running); PORTMAP_ERR_RECURSIVE (from a callback).
 */
PORTMAP_API portmap_status_t portmap_thread_stop(portmap_client_t *client);

/**
 * Blocking convenience: create a mapping and wait at most timeout_ms for
 * its first outcome. On success *info holds the mapping and, if out is not
 * NULL, *out the handle (kept alive and renewed as the request says; NULL out
 * means the mapping is kept until the client is freed). Not allowed in
 * thread mode or from a callback.
 * @return PORTMAP_OK; the statuses of portmap_map(); PORTMAP_ERR_TIMEOUT;
 * PORTMAP_ERR_REFUSED (info->gateway_result says why); PORTMAP_ERR_STATE;
 * PORTMAP_ERR_NATPMP_GATEWAY; PORTMAP_ERR_UNREACHABLE; PORTMAP_ERR_NO_IGD;
 * PORTMAP_ERR_RECURSIVE.
 * ABI: a macro over portmap_map_sync_sized(), which also takes the size of
 * the struct the program was built with, so that a newer library keeps
 * working with an older program (see "ABI that can grow" in README.md).
 */
#define portmap_map_sync(client, req, timeout_ms, info, out)                                       \
  portmap_map_sync_sized((client), (req), sizeof(portmap_request_t), (timeout_ms), (info),         \
                         sizeof(portmap_info_t), (out))
/** The ABI entry point of portmap_map_sync(). */
PORTMAP_API portmap_status_t portmap_map_sync_sized(portmap_client_t *client,
                                                    const portmap_request_t *req, size_t req_size,
                                                    int timeout_ms, portmap_info_t *info,
                                                    size_t info_size, portmap_mapping_t **out);

/**
 * Probe the gateway for PCP, NAT-PMP and UPnP at once and wait at most
 * timeout_ms (0 = the configured probe budget) for the verdict. Blocking
 * convenience for diagnostics; mappings probe by themselves. Not allowed in
 * thread mode or from a callback.
 * @return PORTMAP_OK (see out->selected); PORTMAP_ERR_INVALID;
 * PORTMAP_ERR_NO_GATEWAY; PORTMAP_ERR_STATE; PORTMAP_ERR_RECURSIVE.
 * ABI: a macro over portmap_probe_sync_sized(), which also takes the size of
 * the struct the program was built with, so that a newer library keeps
 * working with an older program (see "ABI that can grow" in README.md).
 */
#define portmap_probe_sync(client, timeout_ms, out)                                                \
  portmap_probe_sync_sized((client), (timeout_ms), (out), sizeof(portmap_probe_result_t))
/** The ABI entry point of portmap_probe_sync(). */
PORTMAP_API portmap_status_t portmap_probe_sync_sized(portmap_client_t *client, int timeout_ms,
                                                      portmap_probe_result_t *out, size_t size);

/** One row of a gateway's port-mapping table (UPnP only). */
typedef struct portmap_list_entry {
  int protocol;                                  /**< PORTMAP_PROTO_TCP or PORTMAP_PROTO_UDP */
  uint16_t external_port;                        /**< external port of the entry */
  char internal_client[PORTMAP_ADDRSTRLEN];      /**< the host the entry forwards to, as text */
  uint16_t internal_port;                        /**< port on that host */
  char remote_host[PORTMAP_ADDRSTRLEN];          /**< "" = any */
  char description[PORTMAP_MAX_DESCRIPTION + 1]; /**< the entry's description (sanitised) */
  uint32_t lease;                                /**< seconds left, 0 = permanent */
  int enabled; /**< 1 when the gateway says the entry is enabled */
} portmap_list_entry_t;

/**
 * Read the gateway's port-mapping table (UPnP GetGenericPortMappingEntry).
 * Writes at most cap entries and the total in *count. PCP and NAT-PMP
 * cannot list: PORTMAP_ERR_UNSUPPORTED when UPnP is not available.
 * Not allowed in thread mode or from a callback.
 * @return PORTMAP_OK; PORTMAP_ERR_INVALID; PORTMAP_ERR_UNSUPPORTED;
 * PORTMAP_ERR_TIMEOUT; PORTMAP_ERR_REFUSED; PORTMAP_ERR_UNREACHABLE (the
 * gateway's UPnP service cannot be reached); PORTMAP_ERR_NO_IGD (its UPnP
 * devices have no WAN connection service); PORTMAP_ERR_NO_GATEWAY;
 * PORTMAP_ERR_SYSTEM; PORTMAP_ERR_NOMEM; PORTMAP_ERR_STATE; PORTMAP_ERR_RECURSIVE.
 * ABI: a macro over portmap_list_sync_sized(), which also takes the size of
 * the struct the program was built with, so that a newer library keeps
 * working with an older program (see "ABI that can grow" in README.md).
 */
#define portmap_list_sync(client, timeout_ms, entries, cap, count)                                 \
  portmap_list_sync_sized((client), (timeout_ms), (entries), sizeof(portmap_list_entry_t), (cap),  \
                          (count))
/** The ABI entry point of portmap_list_sync(): entry_size is sizeof(portmap_list_entry_t). */
PORTMAP_API portmap_status_t portmap_list_sync_sized(portmap_client_t *client, int timeout_ms,
                                                     portmap_list_entry_t *entries,
                                                     size_t entry_size, size_t cap, size_t *count);

/**
 * Tell the client that the network may have changed (the system reported a
 * new address or route, the machine resumed from sleep). Without this it
 * looks every 30 s. It re-reads the default gateway (unless one was
 * configured) and the local IPv4 address towards it (a new IPv6 address is
 * not watched: a PCP server that then answers ADDRESS_MISMATCH makes the
 * mapping fail over as usual); if either changed, every
 * mapping is made again there: `lost`, then `changed` once it is mapped
 * again (what the old gateway or the old address held cannot be deleted
 * from here and lapses at the end of its lifetime). Thread-safe; returns at
 * once: the check runs in the next portmap_process() or on the client's
 * own thread.
 * @return PORTMAP_OK; PORTMAP_ERR_INVALID (client NULL); PORTMAP_ERR_NOMEM
 *         (the check could not be scheduled; the 30 s one still runs).
 */
PORTMAP_API portmap_status_t portmap_network_changed(portmap_client_t *client);

/**
 * Copy the drop and traffic counters.
 * @return PORTMAP_OK; PORTMAP_ERR_INVALID.
 * ABI: a macro over portmap_client_stats_sized(), which also takes the size of
 * the struct the program was built with, so that a newer library keeps
 * working with an older program (see "ABI that can grow" in README.md).
 */
#define portmap_client_stats(client, stats)                                                        \
  portmap_client_stats_sized((client), (stats), sizeof(portmap_stats_t))
/** The ABI entry point of portmap_client_stats(): size is sizeof(portmap_stats_t). */
PORTMAP_API portmap_status_t portmap_client_stats_sized(portmap_client_t *client,
                                                        portmap_stats_t *stats, size_t size);

/**
 * The gateway in use as text ("" if none known).
 * @return PORTMAP_OK; PORTMAP_ERR_INVALID; PORTMAP_ERR_NO_GATEWAY.
 */
PORTMAP_API portmap_status_t portmap_client_gateway(portmap_client_t *client, char *buf,
                                                    size_t len);

/** A message for a status; never NULL. */
PORTMAP_API const char *portmap_strerror(portmap_status_t status);

/**
 * The version of the library the program runs with (which may be newer
 * than the header it was built with).
 * @param text if not NULL, set to the version as text ("1.0.0").
 * @return the version as PORTMAP_VERSION_HEX would give it.
 */
PORTMAP_API unsigned portmap_version(const char **text);
/** Name of a PCP result code (RFC 6887 section 7.4), "UNKNOWN" for others. */
PORTMAP_API const char *portmap_pcp_result_name(int result);
/** "pcp", "natpmp", "upnp" or "none". */
PORTMAP_API const char *portmap_backend_name(portmap_backend_t backend);
/** "mapped", "renewed", "changed", "lost", "failed", "deleted". */
PORTMAP_API const char *portmap_event_name(portmap_event_t event);

/**
 * Parse an IPv4 or IPv6 address into 16 octets (IPv4-mapped for IPv4).
 * @return PORTMAP_OK; PORTMAP_ERR_INVALID; PORTMAP_ERR_ADDRESS.
 */
PORTMAP_API portmap_status_t portmap_addr_parse(const char *text, portmap_addr_t *out);
/** Write the text form of an address (IPv4-mapped as dotted quad) into buf; returns buf. */
PORTMAP_API const char *portmap_addr_format(const portmap_addr_t *addr, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* PORTMAP_PORTMAP_H */
