#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus for the PCP fuzzers (RFC 6887, RFC 7220), the
reader fuzzer, the NAT-PMP checks (RFC 6886), the route-table parsers, the
IGD description scanner, the SOAP reply path and the HTTP reader as the
transport feeds it.

    python3 tests/fuzz/gen_corpus.py [OUT_DIR]   # default: tests/fuzz/corpus

Writes OUT_DIR/<name>/seed-*.bin for pcp_response, pcp_request, reader,
natpmp, route, rtnl, igd_desc, soap_reply and http_stream. Packets are built
here from the RFC layouts, independently of src/pcp/wire.c; route tables
as the Linux kernel prints them; descriptions and SOAP replies as
miniupnpd and the routers of ROUTER-QUIRKS.md write them.
Files found by libFuzzer are committed next to them as found-*.bin; this
script only rewrites seed-* files.
"""
import os
import re
import struct
import sys

NONCE = bytes(range(0xA0, 0xAC))


def v4(a, b, c, d):
    return bytes(10) + b"\xff\xff" + bytes([a, b, c, d])


def v6(last):
    return b"\x20\x01\x0d\xb8" + bytes(11) + bytes([last])


ANY4 = v4(0, 0, 0, 0)
CLIENT = v4(192, 168, 1, 10)


def pad4(b):
    return b + bytes(-len(b) % 4)


def opt(code, data, length=None):
    """Option TLV: length without padding, data padded to 4 (A8)."""
    n = len(data) if length is None else length
    return struct.pack("!BBH", code, 0, n) + pad4(data)


def third_party(addr):
    return opt(1, addr)


def prefer_failure():
    return opt(2, b"")


def filt(prefix, port, addr):
    return opt(3, struct.pack("!BBH", 0, prefix, port) + addr)


def description(text):
    return opt(128, text)


def req_header(opcode, lifetime, client=CLIENT, version=2, r=0):
    return struct.pack("!BBHI", version, (0x80 if r else 0) | opcode, 0, lifetime) + client


def resp_header(opcode, result, lifetime, epoch, version=2, r=1):
    return struct.pack("!BBBBII", version, (0x80 if r else 0) | opcode, 0, result, lifetime,
                       epoch) + bytes(12)


def map_payload(proto=17, iport=0x1234, eport=0x5678, eaddr=ANY4):
    return NONCE + struct.pack("!B3xHH", proto, iport, eport) + eaddr


def peer_payload(proto=6, iport=0x1234, eport=0x5678, eaddr=ANY4, pport=0x9ABC,
                 paddr=v4(198, 51, 100, 7)):
    return map_payload(proto, iport, eport, eaddr) + struct.pack("!H2x", pport) + paddr


ALL_MAP_OPTS = (third_party(v4(192, 168, 1, 77)) + prefer_failure() +
                filt(120, 443, v4(203, 0, 113, 0)) + filt(64, 0, v6(0)) +
                description(b"libportmap seed"))
ALL_PEER_OPTS = third_party(v4(192, 168, 1, 77)) + description(b"peer \xc3\xa9")
EXT = v4(203, 0, 113, 9)


def responses():
    m = map_payload(eaddr=EXT)
    p = peer_payload(eaddr=EXT)
    ok = resp_header(1, 0, 7200, 1000)
    yield "map_success", ok + m
    yield "map_success_all_options", ok + m + ALL_MAP_OPTS
    yield "map_delete_confirmed", resp_header(1, 0, 0, 1000) + m
    yield "map_no_resources", resp_header(1, 8, 30, 1000) + map_payload()
    yield "map_cannot_provide_external", resp_header(1, 11, 1800, 5) + m + prefer_failure()
    yield "map_unknown_result_200", resp_header(1, 200, 1800, 5) + m
    yield "map_eight_filters", ok + m + b"".join(
        filt(104, 53, v4(198, 51, 100, i)) for i in range(8))
    yield "map_nine_filters", ok + m + b"".join(
        filt(104, 53, v4(198, 51, 100, i)) for i in range(9))
    yield "map_filter_prefix_129", ok + m + filt(129, 1, v6(1))
    yield "map_filter_v4_prefix_95", ok + m + filt(95, 1, v4(1, 2, 3, 4))
    yield "map_filter_remove_all", ok + m + filt(0, 0, bytes(16))
    yield "map_unknown_mandatory_option", ok + m + opt(4, b"abcdefg") + third_party(v6(5))
    yield "map_unknown_optional_option", ok + m + opt(200, b"xyz") + opt(255, b"")
    yield "map_option_code_0", ok + m + opt(0, b"")
    yield "map_description_300", ok + m + description(b"D" * 300)
    yield "map_description_len_0", ok + m + description(b"")
    yield "map_description_pad_nonzero", ok + m + opt(128, b"ab\xee\xee", length=2)
    yield "map_third_party_bad_len", ok + m + opt(1, bytes(4))
    yield "map_prefer_failure_bad_len", ok + m + opt(2, bytes(4))
    yield "map_option_overrun", ok + m + struct.pack("!BBH", 200, 0, 8) + bytes(4)
    yield "map_option_len_ffff", ok + m + struct.pack("!BBH", 200, 0, 0xFFFF)
    yield "map_option_header_only", ok + m + struct.pack("!BBH", 3, 0, 20)
    yield "map_truncated_payload", ok + m[:32]
    yield "peer_success", resp_header(2, 0, 3600, 77) + p
    yield "peer_all_options", resp_header(2, 0, 3600, 77) + p + ALL_PEER_OPTS
    yield "peer_map_only_options", resp_header(2, 0, 3600, 77) + p + prefer_failure() + filt(
        128, 1, v6(2))
    yield "peer_error_excessive", resp_header(2, 13, 1800, 77) + peer_payload()
    yield "announce", resp_header(0, 0, 0, 123456)
    yield "announce_lifetime_nonzero", resp_header(0, 0, 99, 123456)
    yield "announce_with_options", resp_header(0, 0, 0, 1) + third_party(v6(3)) + opt(
        130, b"q")
    yield "natpmp_unsupp_version_81", struct.pack("!BBHI", 0, 0x81, 1, 4242)
    yield "natpmp_unsupp_version_00", struct.pack("!BBHI", 0, 0, 1, 0)
    yield "natpmp_unsupp_version_80", struct.pack("!BBHI", 0, 0x80, 1, 7)
    yield "natpmp_result_0", struct.pack("!BBHI", 0, 0x81, 0, 4242)
    yield "natpmp_result_2", struct.pack("!BBHI", 0, 0x81, 2, 4242)
    yield "natpmp_external_address", struct.pack("!BBHI", 0, 0x80, 0, 9) + bytes([203, 0, 113, 9])
    yield "empty", b""
    yield "short_23", (ok + m)[:23]
    yield "short_20", (ok + m)[:20]
    yield "unaligned_61", ok + m + b"\x00"
    yield "unaligned_26", ok[:24] + b"\x00\x00"
    yield "long_1104", ok + m + opt(200, bytes(1104 - 64))
    yield "exactly_1100", ok + m + opt(200, bytes(1100 - 64))
    yield "version_1", resp_header(1, 0, 7200, 1, version=1) + m
    yield "version_0_24", resp_header(1, 1, 0, 1, version=0)
    yield "r_bit_clear", resp_header(1, 0, 7200, 1, r=0) + m
    yield "opcode_3", resp_header(3, 0, 7200, 1) + m
    yield "opcode_127", resp_header(127, 0, 7200, 1)


def requests():
    m = map_payload()
    p = peer_payload()
    yield "map", req_header(1, 7200) + m
    yield "map_all_options", req_header(1, 7200) + m + ALL_MAP_OPTS
    yield "map_delete", req_header(1, 0) + m
    yield "map_v6", req_header(1, 3600, client=v6(9)) + map_payload(eaddr=bytes(16))
    yield "map_all_protocols", req_header(1, 3600) + map_payload(proto=0, iport=0)
    yield "map_suggest_previous", req_header(1, 7200) + map_payload(eaddr=EXT)
    yield "map_eight_filters", req_header(1, 7200) + m + b"".join(
        filt(128, 1000 + i, v4(203, 0, 113, i)) for i in range(8))
    yield "map_nine_filters", req_header(1, 7200) + m + b"".join(
        filt(128, 1000 + i, v4(203, 0, 113, i)) for i in range(9))
    yield "map_description_128", req_header(1, 7200) + m + description(b"d" * 128)
    yield "map_description_hello", req_header(1, 7200) + m + description(b"hello")
    yield "map_unknown_mandatory_option", req_header(1, 7200) + m + opt(99, b"1234")
    yield "map_unknown_optional_option", req_header(1, 7200) + m + opt(199, b"123")
    yield "map_third_party_bad_len", req_header(1, 7200) + m + opt(1, bytes(15))
    yield "map_filter_prefix_129", req_header(1, 7200) + m + filt(129, 0, v6(1))
    yield "map_option_overrun", req_header(1, 7200) + m + struct.pack("!BBH", 1, 0, 16) + bytes(8)
    yield "map_truncated_payload", req_header(1, 7200) + m[:20]
    yield "peer", req_header(2, 3600) + p
    yield "peer_all_options", req_header(2, 3600) + p + ALL_PEER_OPTS
    yield "peer_prefer_failure", req_header(2, 3600) + p + prefer_failure()
    yield "announce", req_header(0, 0)
    yield "announce_lifetime_nonzero", req_header(0, 1234)
    yield "announce_with_option", req_header(0, 0) + description(b"no")
    yield "natpmp_public_address", b"\x00\x00"
    yield "natpmp_map_udp", struct.pack("!BBHHHI", 0, 1, 0, 4000, 4000, 7200)
    yield "empty", b""
    yield "short_23", req_header(1, 7200)[:23]
    yield "unaligned_62", req_header(1, 7200) + m + b"\x00\x00"
    yield "long_1104", req_header(1, 7200) + m + opt(200, bytes(1104 - 64))
    yield "exactly_1100", req_header(1, 7200) + m + opt(200, bytes(1100 - 64))
    yield "version_1", req_header(1, 7200, version=1) + m
    yield "r_bit_set", req_header(1, 7200, r=1) + m
    yield "opcode_5", req_header(5, 7200) + m


# fuzz_reader.c programs: | n | n opcode bytes | buffer |; an opcode is
# (arg << 4) | call, and arg % 4 also picks the reader (0 = the root).
U8, BE16, BE32, BYTES, TAKE, SKIP, PEEK, SUB, UNTIL, LINE, WS, TOKEN, DEC, HEX, TEXT_EQ = range(15)


def program(ops, buf):
    ops = bytes((arg << 4) | call for call, arg in ops)
    return bytes([len(ops)]) + ops + buf


def reader_programs():
    pcp = resp_header(1, 0, 7200, 1234) + map_payload()
    yield "binary", program([(U8, 0), (U8, 0), (BE16, 0), (BE32, 0), (BYTES, 12), (TAKE, 4),
                             (PEEK, 0), (SKIP, 4), (BE32, 0), (BE16, 0)], pcp[:36])
    yield "past_end", program([(BE32, 0), (BE16, 0), (U8, 0), (PEEK, 0), (BE32, 0), (U8, 0),
                               (LINE, 0), (TOKEN, 0), (DEC, 0)], b"\x01\x02\x03\x04\x05\x06\x07")
    # an option TLV cut out with a sub-reader (into slot 1), read to its end and past it
    tlv = opt(1, v4(192, 168, 1, 10))
    yield "sub", program([(SUB, 0), (BE32, 1), (SUB, 4), (BE32, 1),
                          (BE32, 1), (BE32, 1), (U8, 1), (U8, 0)], tlv)
    reply = (b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n"
             b"LOCATION: http://192.168.1.1:5000/rootDesc.xml\r\nEXT:\r\n\r\n")
    yield "ssdp_lines", program([(LINE, 0)] * 6, reply)
    yield "ssdp_header", program([(LINE, 0), (UNTIL, 1), (WS, 0), (TOKEN, 0), (TEXT_EQ, 0),
                                  (UNTIL, 6), (DEC, 8), (LINE, 0), (TEXT_EQ, 0), (UNTIL, 1),
                                  (WS, 0), (LINE, 0), (LINE, 0), (LINE, 0)], reply)
    yield "line_endings", program([(LINE, 0)] * 8, b"lf\ncrlf\r\nlone\rcr\n\n\r\nlast\r")
    yield "tokens", program([(TOKEN, 0), (WS, 0), (TOKEN, 0), (WS, 0), (TOKEN, 0), (PEEK, 0),
                             (SKIP, 0), (TOKEN, 0)], b"GET /x\tHTTP/1.1\r\n")
    yield "numbers", program([(DEC, 11), (SKIP, 0), (HEX, 3), (SKIP, 0), (DEC, 4), (SKIP, 0),
                              (DEC, 7)], b"65535 fF 250 259")
    yield "uint64_max", program([(DEC, 15), (SKIP, 0), (DEC, 15), (SKIP, 0), (HEX, 15)],
                                b"18446744073709551615 18446744073709551616 FFFFFFFFFFFFFFFF")
    yield "chunk_size", program([(HEX, 7), (UNTIL, 5), (LINE, 0), (HEX, 15), (LINE, 0)],
                                b"1a;ext=1\r\nZ\r\n")
    yield "empty", program([(U8, 0), (LINE, 0), (TOKEN, 0), (SUB, 0), (DEC, 0), (TEXT_EQ, 3)],
                           b"")


# fuzz_natpmp.c: the datagram; its first 24 octets also feed the epoch rule
# (prev_sssoe, prev_ms, sssoe, now_ms, big-endian).
def natpmp_datagrams():
    yield "public_ok", struct.pack("!BBHI", 0, 128, 0, 42) + bytes([203, 0, 113, 7])
    yield "map_udp_ok", struct.pack("!BBHIHHI", 0, 129, 0, 4242, 4000, 4001, 7200)
    yield "map_tcp_ok", struct.pack("!BBHIHHI", 0, 130, 0, 4242, 8080, 8080, 3600)
    yield "map_error_3", struct.pack("!BBHIHHI", 0, 130, 3, 9, 8080, 0, 0)
    yield "error_header_only", struct.pack("!BBHI", 0, 129, 4, 9)
    yield "unsupp_version", struct.pack("!BBHI", 0, 128, 1, 0)
    yield "public_short_11", (struct.pack("!BBHI", 0, 128, 0, 42) + bytes(4))[:11]
    yield "map_short_15", struct.pack("!BBHIHHI", 0, 129, 0, 1, 1, 1, 1)[:15]
    yield "version_2_pcp", resp_header(1, 0, 7200, 1000) + map_payload()
    yield "opcode_131", struct.pack("!BBHIHHI", 0, 131, 0, 1, 1, 1, 1)
    yield "request_opcode_1", struct.pack("!BBHHHI", 0, 1, 0, 4000, 4000, 7200)
    yield "empty", b""
    # epoch rule: the gateway rebooted (sssoe back to 5) after 10 minutes
    yield "epoch_reboot", struct.pack("!IQIQ", 100000, 1000, 5, 601000)
    yield "epoch_steady", struct.pack("!IQIQ", 1000, 0, 1600, 600000)
    yield "epoch_clock_back", struct.pack("!IQIQ", 1000, 600000, 900, 0)
    yield "epoch_max", struct.pack("!IQIQ", 0xFFFFFFFF, 0, 0xFFFFFFFF, 0xFFFFFFFF)
    # 7 * elapsed is 2^64 + 5: wrapped, the reboot went unseen
    yield "epoch_wrap", struct.pack("!IQIQ", 1000, 0, 1000, 2635249153387078803)


# fuzz_route.c: /proc/net/route and /proc/net/ipv6_route text.
# Lines padded with blanks to 127 octets, as the kernel prints them.
ROUTE4_HEAD = b"Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT"
ROUTE4_HEAD = ROUTE4_HEAD.ljust(127) + b"\n"


def r4(iface, dest, gw, flags, metric, mask, refcnt=0, use=0):
    line = ("%s\t%s\t%s\t%04X\t%d\t%u\t%s\t%s\t0\t0\t0"
            % (iface, dest, gw, flags, refcnt, use, metric, mask)).encode()
    return line.ljust(127) + b"\n"


def r6(dest, plen, gw, metric, flags, iface, refcnt=1, use=0):
    return ("%s %02x %s %02x %s %08x %08x %08x %08x %8s\n"
            % (dest, plen, "0" * 32, 0, gw, metric, refcnt, use, flags, iface)).encode()


Z32 = "0" * 32
FE80_1 = "fe800000000000000000000000000001"
ULA_1 = "fd000000000000000000000000000001"


def route_tables():
    yield "v4_one_default", ROUTE4_HEAD + r4("eth0", "00000000", "0101A8C0", 3, 100,
                                             "00000000") + r4("eth0", "0001A8C0", "00000000", 1,
                                                              100, "00FFFFFF")
    yield "v4_two_metrics", ROUTE4_HEAD + r4("wlan0", "00000000", "FE01A8C0", 3, 600,
                                             "00000000") + r4("eth0", "00000000", "0100000A", 3,
                                                              100, "00000000")
    yield "v4_equal_metrics", ROUTE4_HEAD + r4("eth1", "00000000", "0200000A", 3, 0,
                                               "00000000") + r4("eth0", "00000000", "0100000A",
                                                                3, 0, "00000000")
    yield "v4_negative_metric", ROUTE4_HEAD + r4("tun0", "00000000", "0100000A", 3, -1,
                                                 "00000000")
    yield "v4_reject_and_down", ROUTE4_HEAD + r4("eth0", "00000000", "0101A8C0", 0x203, 1,
                                                 "00000000") + r4("eth0", "00000000", "0101A8C0",
                                                                  2, 1, "00000000")
    yield "v4_no_gateway", ROUTE4_HEAD + r4("ppp0", "00000000", "00000000", 1, 0, "00000000")
    yield "v4_crlf", (ROUTE4_HEAD + r4("eth0", "00000000", "0101A8C0", 3, 100,
                                       "00000000")).replace(b"\n", b"\r\n")
    yield "v4_no_newline", r4("eth0", "00000000", "0101A8C0", 3, 100, "00000000").rstrip(b"\n")
    yield "v4_long_ifname", ROUTE4_HEAD + r4("a" * 16, "00000000", "0101A8C0", 3, 1,
                                             "00000000") + r4("b" * 15, "00000000", "0201A8C0",
                                                              3, 2, "00000000")
    yield "v6_default_link_local", r6(Z32, 0, FE80_1, 1024, 0x450003, "eth0") + r6(
        "fe800000000000000000000000000000", 64, Z32, 256, 1, "eth0") + r6(
        "00000000000000000000000000000001", 128, Z32, 0, 0x80200001, "lo")
    yield "v6_two_defaults", r6(Z32, 0, FE80_1, 1024, 0x450003, "wlan0") + r6(
        Z32, 0, ULA_1, 100, 0x3, "eth0")
    yield "v6_reject", r6(Z32, 0, Z32, 0xFFFFFFFF, 0x200, "lo") + r6(Z32, 0, ULA_1, 1, 0x201, "lo")
    yield "v6_upper_case", r6(Z32, 0, FE80_1.upper(), 1, 3, "eth0")
    yield "v6_short_hex", r6(Z32, 0, FE80_1[:31], 1, 3, "eth0")
    yield "empty", b""


# fuzz_igd_desc.c: root descriptions.
def service(stype, ctl, sid="urn:upnp-org:serviceId:X"):
    return ("<service><serviceType>%s</serviceType><serviceId>%s</serviceId>"
            "<SCPDURL>/scpd.xml</SCPDURL><controlURL>%s</controlURL>"
            "<eventSubURL>/evt</eventSubURL></service>" % (stype, sid, ctl))


WANIP1 = "urn:schemas-upnp-org:service:WANIPConnection:1"
WANIP2 = "urn:schemas-upnp-org:service:WANIPConnection:2"
WANPPP1 = "urn:schemas-upnp-org:service:WANPPPConnection:1"
L3F = "urn:schemas-upnp-org:service:Layer3Forwarding:1"
DSL_IP = "urn:dslforum-org:service:WANIPConnection:1"


def device(dtype, body, name="Router"):
    return ("<device><deviceType>%s</deviceType><friendlyName>%s</friendlyName>%s</device>"
            % (dtype, name, body))


def root(dev, url_base=""):
    base = "<URLBase>%s</URLBase>" % url_base if url_base else ""
    return ('<?xml version="1.0"?>\r\n<root xmlns="urn:schemas-upnp-org:device-1-0">'
            "<specVersion><major>1</major><minor>0</minor></specVersion>%s%s</root>\r\n"
            % (base, dev)).encode()


def wan_tree(services, ns="schemas-upnp-org", v=1):
    conn = device("urn:%s:device:WANConnectionDevice:%d" % (ns, v),
                  "<serviceList>%s</serviceList>" % "".join(services), "WANConnectionDevice")
    wan = device("urn:%s:device:WANDevice:%d" % (ns, v), "<deviceList>%s</deviceList>" % conn,
                 "WANDevice")
    return device("urn:%s:device:InternetGatewayDevice:%d" % (ns, v),
                  "<serviceList>%s</serviceList><deviceList>%s</deviceList>"
                  % (service(L3F, "/ctl/L3F"), wan), "MiniUPnPd router")


def descriptions():
    yield "miniupnpd_v1", root(wan_tree([service(WANIP1, "/ctl/IPConn")]))
    yield "miniupnpd_v2", root(wan_tree([service(WANIP2, "/ctl/IPConn")], v=2))
    yield "ip_and_ppp", root(wan_tree([service(WANPPP1, "/upnp/control/WANPPPConn1"),
                                       service(WANIP1, "/upnp/control/WANIPConn1")]))
    yield "url_base", root(wan_tree([service(WANIP1, "ctl/IPConn")]),
                           "http://192.168.1.1:49152/")
    yield "url_base_other_host", root(wan_tree([service(WANIP1, "/ctl")]),
                                      "http://10.9.9.9:80/")
    yield "absolute_control_url", root(wan_tree([service(WANIP1,
                                                         "http://192.168.1.1:5000/ctl")]))
    yield "dslforum_tr064", root(wan_tree([service(DSL_IP, "/upnp/control/wanipconnection1")],
                                          ns="dslforum-org"))
    yield "nine_wan_services", root(wan_tree([service(WANIP1, "/c%d" % i) for i in range(9)]))
    yield "no_wan_service", root(device("urn:schemas-upnp-org:device:InternetGatewayDevice:1",
                                        "<serviceList>%s</serviceList>" % service(L3F, "/l3f")))
    yield "empty_control_url", root(wan_tree([service(WANIP1, "")]))
    yield "prefixed_cdata_comments", (
        b'<?xml version="1.0"?><!-- router --><u:root xmlns:u="urn:schemas-upnp-org:device-1-0">'
        b"<u:device><u:deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1"
        b"</u:deviceType><u:friendlyName><![CDATA[Box <5>]]></u:friendlyName><u:deviceList>"
        b"<u:device><u:deviceType>urn:schemas-upnp-org:device:WANDevice:1</u:deviceType>"
        b"<u:deviceList><u:device><u:serviceList><u:service a='1'>"
        b"<u:serviceType>  urn:schemas-upnp-org:service:WANIPConnection:1 </u:serviceType>"
        b"<?pi x?><u:controlURL>/ctl&amp;x</u:controlURL></u:service></u:serviceList>"
        b"</u:device></u:deviceList></u:device></u:deviceList></u:device></u:root>")
    yield "unclosed", root(wan_tree([service(WANIP1, "/ctl")]))[:-20]
    yield "long_type", root(wan_tree([service(WANIP1 + "x" * 200, "/ctl"),
                                      service(WANIP1, "/" + "p" * 300)]))
    yield "deep", b"<root>" + b"<device>" * 40 + b"</device>" * 40 + b"</root>"
    yield "empty", b""


# fuzz_soap_reply.c: | kind | body |, kind % 7 over STATUS, EXTIP, ADD,
# ADDANY, GET, DELETE, LIST.
K_STATUS, K_EXTIP, K_ADD, K_ADDANY, K_GET, K_DELETE, K_LIST = range(7)


def envelope(action, inner, prefix="u", svc=WANIP1):
    return ('<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/'
            'envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
            '<%s:%sResponse xmlns:%s="%s">%s</%s:%sResponse></s:Body></s:Envelope>\r\n'
            % (prefix, action, prefix, svc, inner, prefix, action)).encode()


def fault(code, text="ConflictInMappingEntry"):
    return ('<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/'
            'envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError'
            '</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0">'
            "<errorCode>%s</errorCode><errorDescription>%s</errorDescription></UPnPError>"
            "</detail></s:Fault></s:Body></s:Envelope>\r\n" % (code, text)).encode()


def tags(**kv):
    return "".join("<%s>%s</%s>" % (k, v, k) for k, v in kv.items())


ENTRY = tags(NewInternalPort="4000", NewInternalClient="192.168.1.10", NewEnabled="1",
             NewPortMappingDescription="libportmap", NewLeaseDuration="3600")


def soap_replies():
    def kb(kind, body):
        return bytes([kind]) + body
    yield "status", kb(K_STATUS, envelope("GetStatusInfo", tags(
        NewConnectionStatus="Connected", NewLastConnectionError="ERROR_NONE", NewUptime="4242")))
    yield "status_legacy_uptime", kb(K_STATUS, envelope("GetStatusInfo", tags(
        NewConnectionStatus="Connected", NewLastConnectionError="ERROR_NONE", NewUpTime="4242")))
    yield "extip", kb(K_EXTIP, envelope("GetExternalIPAddress",
                                         tags(NewExternalIPAddress="203.0.113.7")))
    yield "extip_too_long", kb(K_EXTIP, envelope("GetExternalIPAddress",
                                                  tags(NewExternalIPAddress="2" * 80)))
    yield "add_ok", kb(K_ADD, envelope("AddPortMapping", ""))
    yield "add_718", kb(K_ADD, fault(718))
    yield "add_725_ppp", kb(K_ADD, fault(725, "OnlyPermanentLeasesSupported"))
    yield "add_bad_code", kb(K_ADD, fault("x718"))
    yield "add_huge_code", kb(K_ADD, fault("99999999999999999999"))
    yield "addany", kb(K_ADDANY, envelope("AddAnyPortMapping", tags(NewReservedPort="40123"),
                                           svc=WANIP2))
    yield "addany_missing", kb(K_ADDANY, envelope("AddAnyPortMapping", "", svc=WANIP2))
    yield "get", kb(K_GET, envelope("GetSpecificPortMappingEntry", ENTRY))
    yield "get_714", kb(K_GET, fault(714, "NoSuchEntryInArray"))
    yield "delete_ok", kb(K_DELETE, envelope("DeletePortMapping", "", prefix="m"))
    yield "list", kb(K_LIST, envelope("GetGenericPortMappingEntry", tags(
        NewRemoteHost="", NewExternalPort="4000", NewProtocol="UDP") + ENTRY))
    yield "list_713", kb(K_LIST, fault(713, "SpecifiedArrayIndexInvalid"))
    yield "list_long_desc", kb(K_LIST, envelope("GetGenericPortMappingEntry", tags(
        NewExternalPort="4000", NewProtocol="TCPUDP", NewPortMappingDescription="d" * 200)))
    yield "html_error", kb(K_STATUS, b"<html><body>500 Internal Server Error</body></html>")
    yield "truncated", kb(K_GET, envelope("GetSpecificPortMappingEntry", ENTRY)[:150])
    yield "empty", kb(K_DELETE, b"")


# fuzz_http_stream.c: | cap selector | n | n read sizes (0 = 256) | stream |;
# cap selector % 4 over 0, 16, 1024, 65536.
def http_streams():
    def st(cap, reads, stream):
        return bytes([cap, len(reads)]) + bytes(reads) + stream
    soap = envelope("GetExternalIPAddress", tags(NewExternalIPAddress="203.0.113.7"))
    cl = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n" % len(soap)
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
               b"".join(b"%x;e=1\r\n%s\r\n" % (len(soap[i:i + 40]), soap[i:i + 40])
                        for i in range(0, len(soap), 40)) + b"0\r\nX-T: 1\r\n\r\n")
    close = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\n" + soap
    yield "content_length_whole", st(3, [], cl + soap)
    yield "content_length_1", st(3, [1], cl + soap)
    yield "content_length_split_head", st(2, [7, 30, 3], cl + soap)
    yield "chunked_13", st(3, [13], chunked)
    yield "chunked_1", st(2, [1], chunked)
    yield "until_close", st(3, [100, 1], close)
    yield "too_large_16", st(1, [5], cl + soap)
    yield "cap_0_empty", st(0, [], b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    yield "fault_500", st(3, [64], b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d"
                          b"\r\n\r\n%s" % (len(fault(718)), fault(718)))
    yield "long_head", st(3, [0], b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 9000 +
                          b"\r\nContent-Length: 2\r\n\r\nok")
    yield "truncated", st(3, [50], (cl + soap)[:-10])


# fuzz_pcp_session.c scripts: | irt mrt mrc mrd timeout (selectors) | seed (3) | ops |
P_MAP, P_PEER, P_REVOKE, P_DETACH, P_ANSWER, P_RAW, P_ANNOUNCE, P_NATPMP, P_ADVANCE, P_RUN, \
    P_DELETE, P_SHUTDOWN = range(12)
MS, DECI, SEC, MIN = range(4)  # ADVANCE units: ms, 100 ms, s, min
# ANSWER selectors: RESULTS[r % 20] and LIFETIMES[l % 10] of the target
R_OK, R_UNSUPP_OPTION, R_NO_RESOURCES, R_NOT_AUTHORIZED, R_CANNOT_PROVIDE, R_NETWORK_FAILURE = \
    0, 8, 11, 5, 14, 10
R_UNKNOWN_200 = 19
L_ASKED, L_0, L_1, L_4, L_30, L_120, L_3600 = range(7)
E_STEP, E_REBOOT, E_BACK2, E_AHEAD, E_BACK1 = 0, 3, 4, 5, 6
M_NONE, M_NONCE, M_PROTO, M_PORT, M_OPCODE, M_RBIT, M_VERSION = 0, 8, 9, 10, 11, 12, 13
S_SERVER, S_OTHER_PORT, S_OTHER_HOST = 0, 6, 7


def pcp_script(ops, irt=0, mrt=0, mrc=0, mrd=0, timeout=0, seed=(1, 2, 3)):
    return bytes([irt, mrt, mrc, mrd, timeout]) + bytes(seed) + b"".join(ops)


def p_map(flags=0, port=0, lifetime=5, nonce=0, peer=False):
    """flags: bits 0-1 protocol (TCP, UDP, all, SCTP), 4 ONCE, 8 PREFER_FAILURE,
    0x10 DESCRIPTION, 0x20 its second text (both: required), 0x40 THIRD_PARTY,
    0x80 FILTER. lifetime: index of 0, 1, 10, 60, 120, 3600, 86400, 86401;
    0x80 also revokes from the callback."""
    return bytes([P_PEER if peer else P_MAP, flags, port, lifetime, nonce])


def p_answer(h=0, r=R_OK, life=L_ASKED, epoch=E_STEP, ext=0, mut=M_NONE, src=S_SERVER):
    return bytes([P_ANSWER, h, r, life, epoch, ext, mut, src])


def p_advance(n, unit=SEC):
    return struct.pack("!BBH", P_ADVANCE, unit, n)


def p_run(n=1):
    return bytes([P_RUN, n - 1])


def p_raw(data, src=S_SERVER):
    return struct.pack("!BBH", P_RAW, src, len(data)) + data


def pcp_sessions():
    m, ok = p_map(), p_answer()
    yield "map_renew_delete", pcp_script([
        p_map(lifetime=4), ok, p_run(), p_answer(), p_advance(90), p_answer(),
        bytes([P_REVOKE, 0]), p_answer(life=L_0), p_run(4)])
    yield "retransmit_until_mrc", pcp_script([m, p_run(8)], irt=1, mrc=2)
    yield "retransmit_mrd_timeout", pcp_script([m, p_map(port=1), p_run(12)], irt=3, mrd=2,
                                               timeout=2)
    yield "retransmit_until_mrd", pcp_script([m, p_run(16)], irt=1, mrd=2)
    yield "retransmit_forever", pcp_script([m, p_run(16), p_run(16), ok], irt=1, mrt=1)
    yield "epoch_drop_announce", pcp_script([
        m, ok, p_advance(30), bytes([P_ANNOUNCE, E_REBOOT, 0, S_SERVER]), p_run(3), ok])
    yield "epoch_drop_in_answer", pcp_script([
        m, p_map(port=1), ok, p_answer(h=1), p_advance(20),
        p_answer(h=0, epoch=E_REBOOT), p_run(2), p_answer(h=1)])
    yield "epoch_back_two", pcp_script([m, ok, p_answer(epoch=E_BACK2), p_run()])
    yield "epoch_back_one", pcp_script([m, ok, p_answer(epoch=E_BACK1), p_advance(5),
                                        p_answer(epoch=E_AHEAD), p_run()])
    yield "natpmp_unsupp_version", pcp_script([m, bytes([P_NATPMP, 0, S_SERVER]), p_run()])
    yield "natpmp_after_grant", pcp_script([
        m, ok, p_map(port=2), bytes([P_NATPMP, 1, S_SERVER]), p_run(4)])
    yield "no_resources_backoff", pcp_script([
        m, p_answer(r=R_NO_RESOURCES, life=L_30), p_map(port=3), p_run(3), ok, p_answer(h=1)])
    yield "not_authorized", pcp_script([m, p_answer(r=R_NOT_AUTHORIZED)])
    yield "network_failure_retry", pcp_script([
        m, p_answer(r=R_NETWORK_FAILURE, life=L_1), p_run(2), ok], timeout=3)
    yield "description_refused", pcp_script([
        p_map(flags=0x10), p_answer(r=R_UNSUPP_OPTION), p_run(), ok])
    yield "description_required_refused", pcp_script([
        p_map(flags=0x30), p_answer(r=R_UNSUPP_OPTION), p_run()])
    yield "prefer_failure", pcp_script([p_map(flags=0x08), p_answer(r=R_CANNOT_PROVIDE)])
    yield "third_party_filters", pcp_script([
        p_map(flags=0xD1, port=0x10), ok, p_answer(ext=0x80), p_run(), p_answer(ext=0x40)])
    yield "unknown_result", pcp_script([m, p_answer(r=R_UNKNOWN_200)])
    yield "lifetime_0_on_create", pcp_script([m, p_answer(life=L_0), p_run(2), ok])
    yield "unmatched_fields", pcp_script([
        m, p_answer(mut=M_NONCE), p_answer(mut=M_PROTO), p_answer(mut=M_PORT),
        p_answer(mut=M_OPCODE), p_answer(mut=M_RBIT), p_answer(mut=M_VERSION),
        p_answer(src=S_OTHER_PORT), p_answer(src=S_OTHER_HOST), ok, p_answer(mut=M_NONCE)])
    yield "unsolicited_update_H7", pcp_script([
        m, ok, p_advance(10), p_answer(ext=0x06), p_answer(ext=0x06), p_answer(life=L_0),
        p_advance(4000), p_run(2)])
    yield "renewal_answered_lifetime_0", pcp_script([
        p_map(lifetime=4), ok, p_run(2), p_answer(life=L_0), p_advance(200), p_run(2)])
    yield "expiry_lost", pcp_script([m, p_answer(life=L_4), p_advance(10), p_run(2), ok])
    yield "once_expires", pcp_script([p_map(flags=0x04), p_answer(life=L_4), p_advance(5)])
    yield "peer", pcp_script([
        p_map(peer=True, nonce=1), ok, p_answer(mut=M_OPCODE), p_run(), ok,
        bytes([P_REVOKE, 0])])
    yield "detach_then_answer", pcp_script([m, bytes([P_DETACH, 0]), ok, p_run(2)])
    yield "revoke_in_callback", pcp_script([p_map(lifetime=0x84), ok, p_run(), p_answer(life=L_0)])
    yield "delete_by_nonce", pcp_script([
        m, ok, bytes([P_DETACH, 0, P_DELETE, 0]) + bytes([0, 0, 0, 0]), p_answer(h=1, life=L_0)])
    yield "shutdown", pcp_script([
        m, p_map(port=1), ok, bytes([P_SHUTDOWN]), p_answer(life=L_0), p_run(4)])
    yield "long_lifetime_run", pcp_script([
        p_map(lifetime=6), ok, p_run(3), p_advance(600, MIN), p_run(4), ok])
    yield "raw_garbage", pcp_script([
        m, p_raw(b"\x02\x81" + bytes(22)), p_raw(bytes(3)), p_raw(b"\x00\x80\x00\x01" + bytes(4)),
        p_raw(b"\x02" * 1104), ok])
    yield "all_protocols_ipv6_refused", pcp_script([
        p_map(flags=2), p_map(lifetime=0x70), ok, p_run()])
    yield "empty", b""


# fuzz_upnp_backend.c scripts: | call timeout, SSDP window, log, destroy (selectors) |
# seed (2) | ops |
U_MAP, U_REVOKE, U_DETACH, U_SSDP, U_SSDP_RAW, U_ANSWER, U_ADVANCE, U_RUN, U_SHUTDOWN = range(9)
# ANSWER modes: 0 the reply its action expects (1, 2 alike), 3 SOAP fault, 4 raw stream,
# 5 HTTP 200 and a raw body, 6 connection closed, 7 expected reply with framing c
A_OK, A_FAULT, A_RAW, A_BODY, A_CLOSED, A_FRAMED = 0, 3, 4, 5, 6, 7
# fault codes: FAULTS[a & 15] in the target
F_718, F_725, F_402, F_501, F_714, F_713, F_724, F_729 = range(8)
T_IGD1, T_IGD2, T_ROOT, T_DSLF, T_SERVICE, T_OTHER = range(6)
HERE = os.path.dirname(os.path.abspath(__file__))


def c_string(path, name):
    """The text of `static const char NAME[] = "..." "...";` in a C file (its recorded
    descriptions), with the C escapes the file uses decoded."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start = text.index("static const char %s[] =" % name)
    end = text.index(";\n", start)
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', text[start:end])
    raw = "".join(parts)
    out, i = [], 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            n = raw[i + 1]
            out.append({"r": "\r", "n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(n, n))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out).encode()


def recorded_descriptions():
    fake = os.path.join(HERE, "..", "fake", "fake_upnp.c")
    unit = os.path.join(HERE, "..", "unit", "test_upnp.c")
    for label, path, name in (("miniupnpd_igd1", fake, "DESC_IGD1"),
                              ("miniupnpd_igd2_urlbase", fake, "DESC_IGD2"),
                              ("draytek_ppp", fake, "DESC_PPP"),
                              ("huawei_dslforum", fake, "DESC_DSLF"),
                              ("mikrotik_two_wans", fake, "DESC_TWO"),
                              ("no_wan_service", unit, "DESC_NO_WAN")):
        yield label, c_string(path, name).replace(b"%PORT%", b"5000")


def upnp_script(ops, timeout=0, window=0, log=1, destroy=0, seed=(0, 7)):
    return bytes([timeout, window, log, destroy]) + bytes(seed) + b"".join(ops)


def u_map(flags=0, port=0, lifetime=5):
    """flags: 1 UDP, 2 ONCE, 4 DELETE, 8 description (0x80: one with markup),
    0x10 revoke from the callback; lifetime: index of 0, 1, 10, 60, 120, 3600, 86400, 7."""
    return bytes([U_MAP, flags, port, lifetime])


def u_ssdp(target=T_IGD1, location=0, source=0):
    return bytes([U_SSDP, target, location, source])


def u_answer(mode=A_OK, a=0, b=0, c=0, data=None):
    if mode in (A_RAW, A_BODY):
        return bytes([U_ANSWER, mode, a, b, c]) + struct.pack("!H", len(data)) + data
    return bytes([U_ANSWER, mode, a, b, c])


def u_advance(n, unit=SEC):
    return struct.pack("!BBH", U_ADVANCE, unit, n)


def u_run(n=1):
    return bytes([U_RUN, n - 1])


def upnp_sessions():
    ok = u_answer()
    connected = u_answer(a=0, b=0, c=1)  # GetStatusInfo: Connected, NewUptime
    discover = [u_ssdp(), u_answer(), connected, ok]  # describe, status, public address
    descs = dict(recorded_descriptions())
    yield "map_renew_delete", upnp_script([
        u_map(lifetime=2)] + discover + [ok, u_run(), ok, ok, ok,
                                         bytes([U_REVOKE, 0]), ok])
    for label, doc in descs.items():
        target = T_DSLF if "dslforum" in label else T_IGD1
        yield "recorded_" + label, upnp_script([
            u_map(), u_ssdp(target), u_answer(A_BODY, data=doc), connected, ok, ok, ok,
            u_run(2), ok, ok])
    yield "conflict_718_then_any", upnp_script([
        u_map()] + discover + [u_answer(A_FAULT, F_718), u_answer(A_FAULT, F_718),
                               u_answer(A_FAULT, F_718), ok])
    yield "igd2_addany", upnp_script([
        u_map(), u_ssdp(T_IGD2), u_answer(c=1), connected, ok, u_answer(A_FAULT, F_718),
        u_answer(a=1, b=9)])
    yield "permanent_only_725", upnp_script([
        u_map(lifetime=4)] + discover + [u_answer(A_FAULT, F_725), ok, u_run(2), ok, ok, ok])
    yield "arris_402_once", upnp_script([
        u_map(flags=2, lifetime=3)] + discover + [u_answer(A_FAULT, F_402), ok,
                                                  u_advance(61), ok])
    yield "same_port_724", upnp_script([
        u_map(port=0x18)] + discover + [u_answer(A_FAULT, F_724), ok])
    yield "watchdog_then_late_answer", upnp_script([
        u_map()] + discover + [u_advance(3), ok, u_run(3), ok, ok, ok])
    yield "http_failures_rediscover", upnp_script([
        u_map()] + discover + [u_answer(A_CLOSED), u_answer(A_CLOSED), u_ssdp(), ok, connected,
                               ok, ok])
    yield "lease_expiry_lost", upnp_script([
        u_map(lifetime=2)] + discover + [ok, u_advance(6), u_answer(A_CLOSED), u_advance(6),
                                         u_run(3), ok, ok])
    yield "delete_flag_ours", upnp_script([u_map(flags=4)] + discover + [ok, ok])
    yield "delete_flag_not_ours", upnp_script([u_map(flags=4)] + discover + [u_answer(a=2)])
    yield "vanished_714", upnp_script([
        u_map(lifetime=3)] + discover + [ok, u_run(), ok, u_answer(A_FAULT, F_714), ok])
    yield "rootdevice_grace", upnp_script([
        u_map(), u_ssdp(T_ROOT), u_run(), ok, connected, ok, ok])
    yield "other_host_candidate", upnp_script([
        u_map(), u_ssdp(location=3, source=2), u_ssdp(location=4, source=3), u_run(2), ok,
        connected, ok, ok])
    yield "status_legacy_uptime", upnp_script([
        u_map(), u_ssdp(), ok, u_answer(b=1, c=9), ok, ok])
    yield "private_external_q5", upnp_script([
        u_map(), u_ssdp(), u_answer(a=0x40, b=0), u_answer(a=1), u_answer(a=2), connected,
        ok, ok, ok])
    yield "shutdown_with_mapping", upnp_script([
        u_map()] + discover + [ok, bytes([U_SHUTDOWN]), ok], destroy=1)
    yield "revoke_while_adding", upnp_script([
        u_map()] + discover + [bytes([U_REVOKE, 0]), ok, ok])
    yield "detach_while_adding", upnp_script([
        u_map()] + discover + [bytes([U_DETACH, 0]), ok, ok, u_run(2)])
    yield "revoke_in_callback", upnp_script([u_map(flags=0x18)] + discover + [ok, ok])
    yield "chunked_and_close_framing", upnp_script([
        u_map()] + [u_ssdp(), u_answer(A_FRAMED, c=1), u_answer(A_FRAMED, c=2),
                    u_answer(A_FRAMED, c=1), u_answer(A_FRAMED, c=2)])
    yield "http_404_description", upnp_script([
        u_map(), u_ssdp(), u_answer(0x80, c=8), u_run(3)])
    yield "raw_soap_replies", upnp_script([
        u_map(), u_ssdp(), u_answer(A_BODY, data=descs["miniupnpd_igd1"]),
        u_answer(A_BODY, data=envelope("GetStatusInfo", tags(
            NewConnectionStatus="Connected", NewLastConnectionError="ERROR_NONE",
            NewUpTime="4242"))),
        u_answer(A_BODY, data=envelope("GetExternalIPAddress",
                                       tags(NewExternalIPAddress="203.0.113.7"))),
        u_answer(A_RAW, data=b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n"
                 b"\r\n%s" % (len(fault(718)), fault(718))),
        u_answer(A_BODY, data=envelope("AddPortMapping", ""))])
    with open(os.path.join(HERE, "corpus", "ssdp", "seed-reply_miniupnpd.bin"), "rb") as f:
        recorded = f.read().replace(b"192.168.1.1", b"127.0.0.1")  # our gateway's address
    yield "raw_ssdp_recorded", upnp_script([
        u_map(), bytes([U_SSDP_RAW, 0]) + struct.pack("!H", len(recorded)) + recorded,
        u_run(2), ok, connected, ok, ok])
    yield "many_mappings", upnp_script(
        [u_map(port=i, lifetime=5) for i in range(6)] + discover + [ok] * 8 + [u_run(4)] +
        [ok] * 8)
    yield "empty", b""


# fuzz_rtnl.c: one datagram of an rtnetlink RTM_GETROUTE dump, after an octet that picks
# the family (bit 0: IPv6). Host byte order, as the kernel writes it (little-endian here).
def nl_msg(mtype, seq, payload):
    return struct.pack("=IHHII", 16 + len(payload), mtype, 0x2, seq, 0) + payload + \
        b"\0" * ((4 - len(payload) % 4) % 4)


def nl_attr(atype, value):
    return struct.pack("=HH", 4 + len(value), atype) + value + b"\0" * ((4 - len(value) % 4) % 4)


def nl_route(family, dst_len, table, rtype, attrs, seq=1):
    return nl_msg(24, seq, struct.pack("=BBBBBBBBI", family, dst_len, 0, 0, table, 3, 0, rtype,
                                       0) + b"".join(attrs))


NL_DONE = nl_msg(3, 1, struct.pack("=i", 0))


def rtnl_dumps():
    gw4 = lambda a: nl_attr(5, bytes(a))
    u32 = lambda t, v: nl_attr(t, struct.pack("=I", v))
    ula1 = bytes.fromhex(ULA_1)
    yield "v4_default", b"\0" + nl_route(2, 24, 254, 1, [u32(15, 254), u32(4, 2)]) + nl_route(
        2, 0, 254, 1, [u32(15, 254), u32(6, 100), gw4([192, 168, 1, 1]), u32(4, 2)]) + NL_DONE
    yield "v4_metrics_tables", b"\0" + nl_route(
        2, 0, 254, 1, [u32(6, 600), gw4([10, 0, 0, 1]), u32(4, 3)]) + nl_route(
        2, 0, 100, 1, [u32(6, 1), gw4([10, 8, 0, 1]), u32(4, 4)]) + nl_route(
        2, 0, 0, 1, [u32(15, 51820), gw4([10, 8, 0, 2])]) + nl_route(
        2, 0, 254, 7, [gw4([10, 8, 0, 3])]) + nl_route(
        2, 0, 254, 1, [u32(6, 100), gw4([10, 0, 1, 1]), u32(4, 5)])
    hop = lambda ifindex, gw: struct.pack("=HBBi", 8 + len(nl_attr(5, gw)), 0, 0, ifindex) + \
        nl_attr(5, gw)
    yield "v6_multipath", b"\1" + nl_route(10, 0, 254, 1, [u32(6, 1024), nl_attr(
        9, struct.pack("=HBBi", 8, 0, 0, 11) + hop(12, bytes.fromhex(FE80_1)) + hop(13, ula1))]) \
        + NL_DONE
    yield "v6_default", b"\1" + nl_route(10, 0, 254, 1, [u32(15, 254), u32(6, 1024),
                                                          nl_attr(5, ula1), u32(4, 2)]) + NL_DONE
    yield "error", b"\0" + nl_msg(2, 1, struct.pack("=i", -13) + nl_msg(26, 1, b"")[:16])
    yield "other_seq", b"\0" + nl_route(2, 0, 254, 1, [gw4([10, 0, 0, 9])], seq=7) + nl_msg(
        3, 7, struct.pack("=i", 0))


def write(outdir, name, gen):
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-"):
            os.remove(os.path.join(d, f))
    n = 0
    for label, data in gen():
        with open(os.path.join(d, "seed-%s.bin" % label), "wb") as f:
            f.write(data)
        n += 1
    print("%s: %d seeds" % (d, n))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    write(outdir, "pcp_response", responses)
    write(outdir, "pcp_request", requests)
    write(outdir, "reader", reader_programs)
    write(outdir, "natpmp", natpmp_datagrams)
    write(outdir, "route", route_tables)
    write(outdir, "rtnl", rtnl_dumps)
    write(outdir, "igd_desc", descriptions)
    write(outdir, "soap_reply", soap_replies)
    write(outdir, "http_stream", http_streams)
    write(outdir, "pcp_session", pcp_sessions)
    write(outdir, "upnp_backend", upnp_sessions)


if __name__ == "__main__":
    main()
