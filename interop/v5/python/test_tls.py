"""Plaintext and TLS on the same gRPC port.

The Python client verifies the server certificate against gRPC's default roots; the test trusts
the certificate the server presents (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, set in conftest). So the
certificate must be usable as its own trust anchor (self-signed with CA:TRUE, or v1) and name
127.0.0.1 in its subjectAltName.
"""
import socket
import ssl

from harness import assert_nothing, consumer, message, producer, receive_n


def presented_certificate(addr):
    host, port = addr.rsplit(":", 1)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection((host, int(port)), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname=host) as tls:
            assert tls.selected_alpn_protocol() == "h2", f"ALPN {tls.selected_alpn_protocol()!r}"
            return ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True))


def test_plaintext_and_tls_on_one_port(target, names, tls_roots):
    tls_roots.write_text(presented_certificate(target.grpc))
    topic = names.topic("tls")
    with producer(target, [topic], tls=True) as p_tls, producer(target, [topic]) as p_plain:
        via_tls = p_tls.send(message(topic, "via-tls", tag="S"))
        via_plain = p_plain.send(message(topic, "via-plaintext", tag="S"))
    sent = {"via-tls": via_tls.message_id, "via-plaintext": via_plain.message_id}
    # two groups: each sees both messages, one over TLS, one over plaintext
    for key, tls in (("tls_tls", True), ("tls_plain", False)):
        with consumer(target, names.group(key), {topic: "S"}, tls=tls) as c:
            got = receive_n(c, 2, timeout=30)
            assert {m.body.decode(): m.message_id for m in got} == sent, f"{key}: {[m.body for m in got]}"
            assert_nothing(c, 5)
