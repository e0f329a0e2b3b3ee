# SPDX-License-Identifier: MIT
"""A scripted UPnP-IGD on loopback for the CLI tests.

SSDP on UDP 127.0.0.X:1900 (X picked at random among free addresses, so tests
running in parallel do not meet) and HTTP on a random TCP port of the same
address: the root description and the SOAP actions the tools use. Every text
it serves is bytes, so a test can put invalid UTF-8 and control characters
where a real router puts its friendlyName or a mapping's description.

Profiles: "normal" grants any lease; "permanent" refuses a non-zero lease with
725 OnlyPermanentLeasesSupported (ROUTER-QUIRKS Q9: MikroTik).
"""
import random
import re
import socket
import threading

SSDP_PORT = 1900
SERVICE = b"urn:schemas-upnp-org:service:WANIPConnection:1"


def _escape(b):
    return b.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")


class FakeUpnp:
    def __init__(self, friendly_name=b"Fake router", profile="normal", external_ip=b"203.0.113.7"):
        self.friendly_name = friendly_name
        self.profile = profile
        self.external_ip = external_ip
        self.entries = []  # dicts: proto, ext, client, int, desc (bytes), lease
        self.actions = []  # (action, args) in order
        self.lock = threading.Lock()
        self.udp = None
        for _ in range(64):
            addr = "127.0.0.%d" % random.randint(100, 250)
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                u.bind((addr, SSDP_PORT))
            except OSError:
                u.close()
                continue
            self.udp = u
            self.addr = addr
            break
        if self.udp is None:
            raise OSError("no free 127.0.0.X:1900")
        self.udp.settimeout(0.05)
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((self.addr, 0))
        self.tcp.listen(16)
        self.tcp.settimeout(0.05)
        self.http_port = self.tcp.getsockname()[1]
        self.stop = False
        self.threads = [threading.Thread(target=self._ssdp, daemon=True),
                        threading.Thread(target=self._http, daemon=True)]
        for t in self.threads:
            t.start()

    def close(self):
        self.stop = True
        for t in self.threads:
            t.join()
        self.udp.close()
        self.tcp.close()

    def location(self):
        return "http://%s:%d/rootDesc.xml" % (self.addr, self.http_port)

    def _ssdp(self):
        while not self.stop:
            try:
                data, peer = self.udp.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            m = re.search(rb"(?im)^ST:\s*(\S+)", data)
            if not data.startswith(b"M-SEARCH") or m is None:
                continue
            st = m.group(1)
            if st != b"ssdp:all" and b"InternetGatewayDevice" not in st and \
                    st != b"upnp:rootdevice" and st != SERVICE:
                continue
            reply = (b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: " + st +
                     b"\r\nUSN: uuid:fa4e0000-0000-4000-8000-000000000001::" + st +
                     b"\r\nEXT:\r\nSERVER: Fake/1.0 UPnP/1.1 fake/1.0\r\nLOCATION: " +
                     self.location().encode() + b"\r\n\r\n")
            try:
                self.udp.sendto(reply, peer)
            except OSError:
                pass

    def _description(self):
        return (b'<?xml version="1.0"?>\r\n<root xmlns="urn:schemas-upnp-org:device-1-0">'
                b"<specVersion><major>1</major><minor>0</minor></specVersion><device>"
                b"<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>"
                b"<friendlyName>" + self.friendly_name + b"</friendlyName>"
                b"<UDN>uuid:fa4e0000-0000-4000-8000-000000000001</UDN><deviceList><device>"
                b"<deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>"
                b"<friendlyName>WANDevice</friendlyName><deviceList><device>"
                b"<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>"
                b"<friendlyName>WANConnectionDevice</friendlyName><serviceList><service>"
                b"<serviceType>" + SERVICE + b"</serviceType>"
                b"<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>"
                b"<SCPDURL>/WANIPCn.xml</SCPDURL><controlURL>/ctl/IPConn</controlURL>"
                b"<eventSubURL>/evt/IPConn</eventSubURL></service></serviceList></device>"
                b"</deviceList></device></deviceList></device></root>\r\n")

    def _http(self):
        while not self.stop:
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                self._serve(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def _serve(self, conn):
        conn.settimeout(2.0)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        want = int(m.group(1)) if m else 0
        while len(body) < want:
            chunk = conn.recv(4096)
            if not chunk:
                break
            body += chunk
        if head.startswith(b"GET"):
            self._respond(conn, 200, self._description())
            return
        m = re.search(rb'(?im)^SOAPAction:\s*"?[^#"]*#([A-Za-z]+)"?', head)
        action = m.group(1).decode() if m else ""
        args = {k.decode(): v for k, v in re.findall(rb"<(New[A-Za-z]+)>([^<]*)</\1>", body)}
        with self.lock:
            self.actions.append((action, args))
            status, out = self._action(action, args)
        if status == 0:
            self._respond(conn, 200, (b'<?xml version="1.0"?>\r\n<s:Envelope '
                                      b'xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
                                      b's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">'
                                      b"<s:Body><u:" + action.encode() + b'Response xmlns:u="' +
                                      SERVICE + b'">' + out + b"</u:" + action.encode() +
                                      b"Response></s:Body></s:Envelope>\r\n"))
        else:
            self._respond(conn, 500, (b'<?xml version="1.0"?>\r\n<s:Envelope '
                                      b'xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
                                      b's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">'
                                      b"<s:Body><s:Fault><faultcode>s:Client</faultcode>"
                                      b"<faultstring>UPnPError</faultstring><detail>"
                                      b'<UPnPError xmlns="urn:schemas-upnp-org:control-1-0">'
                                      b"<errorCode>%d</errorCode><errorDescription>%s"
                                      b"</errorDescription></UPnPError></detail></s:Fault>"
                                      b"</s:Body></s:Envelope>\r\n") % (status, out))

    def _find(self, args):
        for e in self.entries:
            if e["proto"] == args.get("NewProtocol") and e["ext"] == args.get("NewExternalPort"):
                return e
        return None

    def _action(self, action, a):
        if action == "GetStatusInfo":
            return 0, (b"<NewConnectionStatus>Connected</NewConnectionStatus>"
                       b"<NewLastConnectionError>ERROR_NONE</NewLastConnectionError>"
                       b"<NewUptime>4242</NewUptime>")
        if action == "GetExternalIPAddress":
            return 0, b"<NewExternalIPAddress>" + self.external_ip + b"</NewExternalIPAddress>"
        if action == "AddPortMapping":
            if self.profile == "permanent" and a.get("NewLeaseDuration", b"0") != b"0":
                return 725, b"OnlyPermanentLeasesSupported"
            e = self._find(a)
            if e is None:
                e = {}
                self.entries.append(e)
            e.update(proto=a.get("NewProtocol"), ext=a.get("NewExternalPort"),
                     client=a.get("NewInternalClient", b""), int=a.get("NewInternalPort"),
                     desc=a.get("NewPortMappingDescription", b""),
                     lease=a.get("NewLeaseDuration", b"0"))
            return 0, b""
        if action == "GetSpecificPortMappingEntry":
            e = self._find(a)
            if e is None:
                return 714, b"NoSuchEntryInArray"
            return 0, (b"<NewInternalPort>" + e["int"] + b"</NewInternalPort><NewInternalClient>" +
                       e["client"] + b"</NewInternalClient><NewEnabled>1</NewEnabled>"
                       b"<NewPortMappingDescription>" + _escape(e["desc"]) +
                       b"</NewPortMappingDescription><NewLeaseDuration>" + e["lease"] +
                       b"</NewLeaseDuration>")
        if action == "DeletePortMapping":
            e = self._find(a)
            if e is None:
                return 714, b"NoSuchEntryInArray"
            self.entries.remove(e)
            return 0, b""
        if action == "GetGenericPortMappingEntry":
            try:
                i = int(a.get("NewPortMappingIndex", b""))
            except ValueError:
                return 402, b"Invalid Args"
            if i < 0 or i >= len(self.entries):
                return 713, b"SpecifiedArrayIndexInvalid"
            e = self.entries[i]
            return 0, (b"<NewRemoteHost></NewRemoteHost><NewExternalPort>" + e["ext"] +
                       b"</NewExternalPort><NewProtocol>" + e["proto"] + b"</NewProtocol>"
                       b"<NewInternalPort>" + e["int"] + b"</NewInternalPort><NewInternalClient>" +
                       e["client"] + b"</NewInternalClient><NewEnabled>1</NewEnabled>"
                       b"<NewPortMappingDescription>" + _escape(e["desc"]) +
                       b"</NewPortMappingDescription><NewLeaseDuration>" + e["lease"] +
                       b"</NewLeaseDuration>")
        return 401, b"Invalid Action"

    def _respond(self, conn, status, body):
        reason = {200: b"OK", 500: b"Internal Server Error"}.get(status, b"Error")
        conn.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n" % (status, reason, len(body))
                     + body)
