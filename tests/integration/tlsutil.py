# SPDX-License-Identifier: MIT
"""Test certificates made at test time with the openssl command: a private
CA and leaf certificates it signs (any names, any validity window, so
expired and not-yet-valid ones too), self-signed certificates, and keys
that match nothing. Everything lives in a temporary directory that close()
removes."""

import datetime
import os
import shutil
import ssl
import subprocess
import tempfile

OPENSSL = "/usr/bin/openssl"


def _run(*args):
    r = subprocess.run([OPENSSL] + list(args), capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("openssl %s failed: %s" % (" ".join(args[:3]), r.stderr[-800:]))
    return r.stdout


def _stamp(dt):
    return dt.strftime("%Y%m%d%H%M%SZ")


class CA:
    """A throw-away certificate authority in a temporary directory."""

    def __init__(self, name="holdfast test CA"):
        self.dir = tempfile.mkdtemp(prefix="hf-tls-")
        os.chmod(self.dir, 0o755)  # a proxy's worker may run as another user
        self.key = self.path("ca.key")
        self.cert = self.path("ca.pem")
        self.n = 0
        _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "3650",
             "-subj", "/CN=" + name,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        os.makedirs(self.path("newcerts"))
        open(self.path("index.txt"), "w").close()
        with open(self.path("serial"), "w") as f:
            f.write("1000\n")
        with open(self.path("ca.cnf"), "w") as f:
            f.write("[ ca ]\ndefault_ca = hf\n[ hf ]\ndir = %s\ndatabase = $dir/index.txt\n"
                    "new_certs_dir = $dir/newcerts\nserial = $dir/serial\n"
                    "default_md = sha256\npolicy = any\nunique_subject = no\n"
                    "copy_extensions = none\n[ any ]\ncommonName = supplied\n" % self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def new_key(self, name):
        k = self.path(name + ".key")
        _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", k)
        return k

    def issue(self, name, sans=("DNS:localhost", "IP:127.0.0.1"), days=30,
              start=None, end=None, key=None):
        """A leaf certificate for CN=name signed by this CA. start/end:
        datetimes (UTC) to make expired or not-yet-valid ones; default
        valid from an hour ago for `days` days. Returns (cert, key) paths."""
        self.n += 1
        tag = "%s-%d" % (name.replace("/", "_").replace("*", "star"), self.n)
        key = key or self.new_key(tag)
        csr = self.path(tag + ".csr")
        cert = self.path(tag + ".pem")
        ext = self.path(tag + ".ext")
        _run("req", "-new", "-key", key, "-subj", "/CN=" + name, "-out", csr)
        with open(ext, "w") as f:
            f.write("basicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n")
            if sans:
                f.write("subjectAltName = %s\n" % ",".join(sans))
        now = datetime.datetime.utcnow()
        start = start or now - datetime.timedelta(hours=1)
        end = end or now + datetime.timedelta(days=days)
        _run("ca", "-batch", "-config", self.path("ca.cnf"), "-cert", self.cert,
             "-keyfile", self.key, "-in", csr, "-out", cert, "-notext",
             "-startdate", _stamp(start), "-enddate", _stamp(end), "-extfile", ext)
        return cert, key

    def self_signed(self, name, sans=("DNS:localhost", "IP:127.0.0.1"), days=30):
        self.n += 1
        tag = "self-%s-%d" % (name, self.n)
        key, cert = self.path(tag + ".key"), self.path(tag + ".pem")
        _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", cert, "-days", str(days), "-subj", "/CN=" + name,
             "-addext", "subjectAltName=" + ",".join(sans))
        return cert, key

    def client_context(self, verify=True):
        """An ssl client context trusting this CA (TLS 1.2+)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if verify:
            ctx.load_verify_locations(self.cert)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def close(self):
        if not os.environ.get("HF_KEEP_LOGS"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def tls_args(cert, key, *more):
    """serve flags for the main listener speaking TLS with cert/key."""
    return ("--http_server.tls.enabled=true", "--http_server.tls.cert_pem_file=" + cert,
            "--http_server.tls.key_pem_file=" + key) + more


def serial_of(sock):
    """The serial number (int) of the certificate the server presented."""
    der = sock.getpeercert(binary_form=True)
    pem = ssl.DER_cert_to_PEM_cert(der)
    out = subprocess.run([OPENSSL, "x509", "-noout", "-serial"], input=pem,
                         capture_output=True, text=True, timeout=10).stdout
    return int(out.strip().split("=", 1)[1], 16)


def subject_cn_of(sock):
    der = sock.getpeercert(binary_form=True)
    pem = ssl.DER_cert_to_PEM_cert(der)
    out = subprocess.run([OPENSSL, "x509", "-noout", "-subject", "-nameopt", "RFC2253"],
                         input=pem, capture_output=True, text=True, timeout=10).stdout
    return out.strip().split("CN=", 1)[1].split(",")[0]
