"""Certificates made in the test: one CA, and one certificate per process for 127.0.0.1 and
localhost, good as a server and as a client certificate (mTLS), as the deployment uses them."""

from dataclasses import dataclass
from pathlib import Path

import trustme

from services.client.channel import ClientTLS


@dataclass(frozen=True)
class Certificates:
    ca_file: Path
    cert_file: Path
    key_file: Path
    other_ca_file: Path  # a CA that signed nothing here: what a stranger would trust

    def server_env(self, *, mutual: bool = True) -> dict[str, str]:
        """What a service's process needs to serve TLS (mTLS when `mutual`) and to dial its
        peers with TLS, presenting its certificate."""
        env = {"TLS_CERT_FILE": str(self.cert_file), "TLS_KEY_FILE": str(self.key_file), "TLS_CA_FILE": str(self.ca_file)}
        if mutual:
            env["TLS_CLIENT_CA_FILE"] = str(self.ca_file)
        return env

    def client(self, *, with_certificate: bool = True) -> ClientTLS:
        if with_certificate:
            return ClientTLS(str(self.ca_file), str(self.cert_file), str(self.key_file))
        return ClientTLS(str(self.ca_file))


def make_certificates(directory: Path) -> Certificates:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    paths = Certificates(directory / "ca.pem", directory / "cert.pem", directory / "key.pem", directory / "other-ca.pem")
    ca.cert_pem.write_to_path(str(paths.ca_file))
    leaf.private_key_pem.write_to_path(str(paths.key_file))
    for blob in leaf.cert_chain_pems:
        blob.write_to_path(str(paths.cert_file), append=True)
    trustme.CA().cert_pem.write_to_path(str(paths.other_ca_file))
    return paths
