#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus for the PCP fuzzers (RFC 6887, RFC 7220) and the
reader fuzzer.

    python3 tests/fuzz/gen_corpus.py [OUT_DIR]   # default: tests/fuzz/corpus

Writes OUT_DIR/pcp_response/seed-*.bin, OUT_DIR/pcp_request/seed-*.bin and
OUT_DIR/reader/seed-*.bin. Packets are built here from the RFC layouts,
independently of src/pcp/wire.c.
Files found by libFuzzer are committed next to them as found-*.bin; this
script only rewrites seed-* files.
"""
import os
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


if __name__ == "__main__":
    main()
