"""Certificates and kubeconfigs for a throwaway Kubernetes control plane.

One CA signs the API server's serving certificate and a client certificate per identity; a
separate key pair signs service account tokens. Keys are ECDSA P-256, which every component
accepts and which is quick to generate. Identities follow the names that the API server's RBAC
bootstrap policy binds (``system:masters``, ``system:kube-controller-manager``), so RBAC stays on.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertifiedKey", "ClusterPki", "write_kubeconfig"]

# The first address of the service range is the ``kubernetes`` Service's cluster IP, which
# in-cluster clients dial; it has to be in the serving certificate.
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
_KUBERNETES_SERVICE_IP = "10.0.0.1"
_VALIDITY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class CertifiedKey:
    """A private key and its certificate, written as PEM files."""

    cert: Path
    key: Path


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


class ClusterPki:
    """Generates every key and certificate of one control plane into ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._ca_key = _new_key()
        now = datetime.datetime.now(datetime.UTC)
        self._not_before = now - datetime.timedelta(minutes=5)
        ca_name = _name("wspool-test-ca")
        self._ca_cert = (
            self._builder(ca_name, ca_name, self._ca_key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca = self._write("ca", self._ca_key, self._ca_cert)
        self.service_account = self._service_account_keys()

    def _builder(
        self, subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_before + _VALIDITY)
        )

    def _write(
        self, stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate
    ) -> CertifiedKey:
        pair = CertifiedKey(cert=self.folder / f"{stem}.crt", key=self.folder / f"{stem}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, pair.key)
        return pair

    def _service_account_keys(self) -> CertifiedKey:
        """The token signing key (``.key``) and its public half (``.crt`` is the public key)."""
        key = _new_key()
        pair = CertifiedKey(cert=self.folder / "sa.pub", key=self.folder / "sa.key")
        _write_key(key, pair.key)
        pair.cert.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return pair

    def _issue(
        self,
        stem: str,
        subject: x509.Name,
        usage: x509.ObjectIdentifier,
        alternative_names: list[x509.GeneralName] | None = None,
    ) -> CertifiedKey:
        key = _new_key()
        builder = (
            self._builder(subject, self._ca_cert.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if alternative_names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(alternative_names), critical=False
            )
        return self._write(stem, key, builder.sign(self._ca_key, hashes.SHA256()))

    def serving(self, stem: str, common_name: str, addresses: tuple[str, ...] = ()) -> CertifiedKey:
        """A serving certificate for loopback, ``addresses`` and the in-cluster names of the API
        server."""
        dns = [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        ips = ["127.0.0.1", "::1", _KUBERNETES_SERVICE_IP, *addresses]
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        return self._issue(stem, _name(common_name), ExtendedKeyUsageOID.SERVER_AUTH, names)

    def client(self, stem: str, user: str, group: str | None = None) -> CertifiedKey:
        """A client certificate: the API server reads the user from CN and a group from O."""
        return self._issue(stem, _name(user, group), ExtendedKeyUsageOID.CLIENT_AUTH)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _inline(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, ca: Path, user: str, client: CertifiedKey) -> Path:
    """A self-contained kubeconfig (certificates inlined) whose current context is ``user``."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "wspool-test",
                "cluster": {"server": server, "certificate-authority-data": _inline(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _inline(client.cert),
                    "client-key-data": _inline(client.key),
                },
            }
        ],
        "contexts": [{"name": user, "context": {"cluster": "wspool-test", "user": user}}],
        "current-context": user,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
