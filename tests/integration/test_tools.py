# SPDX-License-Identifier: MIT
"""Operator tools: `holdfast genconfig` writes a starter configuration that
the server runs as is, `holdfast gentoken` signs a connection token that the
server accepts (with its server-side channels and info), `holdfast
checktoken` says exactly why a token is accepted or refused."""
import json
import os
import subprocess
import tempfile
import time

from harness import BIN, RT, Server, free_port, jwt_hs, run_module


def run(*args, timeout=10):
    p = subprocess.run([BIN] + list(args), capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_genconfig_gentoken_and_a_real_connection():
    d = tempfile.mkdtemp(prefix="hf-tools-")
    path = os.path.join(d, "config.json")
    rc, out, err = run("genconfig", "-o", path)
    assert rc == 0 and "wrote" in err, (rc, err)
    cfg = json.load(open(path))
    secret = cfg["client"]["token"]["hmac_secret_key"]
    assert len(secret) == 64 and len(cfg["http_api"]["key"]) == 64, cfg
    rc, again, _ = run("genconfig")
    assert rc == 0 and json.loads(again)["client"]["token"]["hmac_secret_key"] != secret
    rc, _, err = run("genconfig", "-o", path)
    assert rc == 1 and "--force" in err, err  # never overwrites secrets silently
    rc, tok, err = run("gentoken", "--config", path, "--user", "42", "--ttl", "10m",
                       "--channels", "chat:lobby", "--info", '{"name":"Ann"}')
    assert rc == 0, err
    tok = tok.strip()
    rc, out, _ = run("checktoken", "--config", path, tok)
    assert rc == 0 and out.startswith("valid"), out
    assert '"sub": "42"' in out and "expires in" in out, out
    with Server("--http_server.internal_port=%d" % free_port(), config=cfg) as srv:
        c = RT(srv.port)
        res = c.connect(tok)
        assert "chat:lobby" in res.get("subs", {}), res  # server-side, from the token
        c.ok("subscribe", {"channel": "chat:room"})
        c.close()
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    os.rmdir(d)


def test_checktoken_says_why_a_token_is_refused():
    d = tempfile.mkdtemp(prefix="hf-tools-")
    path = os.path.join(d, "c.json")
    with open(path, "w") as f:
        json.dump({"client": {"token": {"hmac_secret_key": "s3cret", "audience": "app"}}}, f)
    now = int(time.time())
    cases = [
        (jwt_hs({"sub": "1", "aud": "app", "exp": now - 30}, "s3cret"), "expired"),
        (jwt_hs({"sub": "1", "aud": "app"}, "other"), "signature does not verify"),
        (jwt_hs({"sub": "1", "aud": "app"}, "s3cret", alg="HS384") + "x", "signature"),
        (jwt_hs({"sub": "1", "aud": "web"}, "s3cret"), 'does not include client.token.audience "app"'),
        (jwt_hs({"sub": "1", "aud": "app", "nbf": now + 100}, "s3cret"), "not valid yet"),
        ("not-a-token", "malformed"),
        (jwt_hs({"sub": "1"}, "s3cret", header={"alg": "RS256", "typ": "JWT"}), 'algorithm "RS256"'),
    ]
    for tok, why in cases:
        rc, out, err = run("checktoken", "--config", path, tok)
        assert rc == 1 and out.startswith("refused") and why in out, (why, rc, out, err)
        assert "s3cret" not in out + err
    rc, out, _ = run("checktoken", "--config", path, jwt_hs({"sub": "1", "aud": "app"}, "s3cret"))
    assert rc == 0 and "never expires" in out, out
    # gentoken: needs a user and an HMAC secret
    assert run("gentoken", "--config", path)[0] == 2
    with open(path, "w") as f:
        json.dump({"client": {"token": {"rsa_public_key": ""}}}, f)
    rc, _, err = run("gentoken", "--config", path, "--user", "1")
    assert rc == 1 and "hmac_secret_key" in err, err
    rc, out, _ = run("checktoken", "--config", path, "a.b.c")
    assert rc == 1 and "no token key" in out, out
    os.unlink(path)
    os.rmdir(d)


if __name__ == "__main__":
    run_module("tools", globals(), os.environ.get("ONLY"))
