"""Signs a small model with the real model-signing package, for tests/signing.rs.

Usage: sign_fixtures.py WORKDIR MODEL_SIGNING_CLI

Writes into WORKDIR: keys (p256, p384, p521, other), a test CA with a code-signing
leaf (and a leaf without that usage, and an unlisted CA), the model directory
`model/`, and one bundle per scenario (*.sig). Prints nothing on success.
"""

import datetime
import pathlib
import shutil
import subprocess
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import model_signing

work = pathlib.Path(sys.argv[1])
cli = sys.argv[2]
model = work / "model"


def write_key(name, curve):
    key = ec.generate_private_key(curve)
    (work / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (work / f"{name}.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )
    return key


def write_model():
    (model / "sub").mkdir(parents=True)
    (model / ".git").mkdir()
    (model / "weights.bin").write_bytes(bytes(range(256)) * 11 + b"tail")
    (model / "config.json").write_text('{"arch": "tiny"}\n')
    (model / "sub" / "tokenizer.json").write_text('{"vocab": []}\n')
    (model / "empty.txt").write_bytes(b"")
    (model / ".git" / "HEAD").write_text("ref: refs/heads/main\n")


def sign(key, out, target=model, hashing=None):
    config = model_signing.signing.Config().use_elliptic_key_signer(
        private_key=work / f"{key}.key"
    )
    if hashing is not None:
        config = config.set_hashing_config(hashing)
    config.sign(target, work / out)


def certificate(subject_key, subject, issuer_key, issuer, is_ca, code_signing):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not is_ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=is_ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if code_signing:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA384())


def write_cert(name, cert):
    (work / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def sign_with_certificate(leaf, out):
    model_signing.signing.Config().use_certificate_signer(
        private_key=work / "leaf.key",
        signing_certificate=work / f"{leaf}.pem",
        certificate_chain=[work / "ca.pem"],
    ).sign(model, work / out)


def main():
    write_model()
    keys = {
        "p256": write_key("p256", ec.SECP256R1()),
        "p384": write_key("p384", ec.SECP384R1()),
        "p521": write_key("p521", ec.SECP521R1()),
        "other": write_key("other", ec.SECP256R1()),
    }
    for name in ["p256", "p384", "p521", "other"]:
        sign(name, f"{name}.sig")
    # The CLI, writing model.sig inside a copy of the model (it ignores its own
    # output); the other signatures stay outside `model/`.
    shutil.copytree(model, work / "model-cli")
    subprocess.run(
        [cli, "sign", "key", "--private_key", str(work / "p384.key"),
         "--signature", str(work / "model-cli" / "model.sig"), str(work / "model-cli")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    sign("p256", "shards.sig",
         hashing=model_signing.hashing.Config().use_shard_serialization(shard_size=1000))
    sign("p256", "blake2.sig",
         hashing=model_signing.hashing.Config().use_file_serialization(hashing_algorithm="blake2"))
    sign("p256", "blake3.sig",
         hashing=model_signing.hashing.Config().use_file_serialization(hashing_algorithm="blake3"))
    sign("p256", "ignoring.sig",
         hashing=model_signing.hashing.Config().set_ignored_paths(paths=["config.json", "logs"]))
    sign("p521", "single.sig", target=model / "weights.bin")

    ca_key = ec.generate_private_key(ec.SECP384R1())
    write_cert("ca", certificate(ca_key, "modelwatch test CA", ca_key, "modelwatch test CA", True, False))
    other_ca_key = ec.generate_private_key(ec.SECP384R1())
    write_cert("other-ca", certificate(other_ca_key, "unlisted CA", other_ca_key, "unlisted CA", True, False))
    leaf_key = keys["p256"]
    (work / "leaf.key").write_bytes((work / "p256.key").read_bytes())
    write_cert("leaf", certificate(leaf_key, "model publisher", ca_key, "modelwatch test CA", False, True))
    write_cert("leaf-no-eku", certificate(leaf_key, "model publisher", ca_key, "modelwatch test CA", False, False))
    sign_with_certificate("leaf", "cert.sig")
    sign_with_certificate("leaf-no-eku", "cert-no-eku.sig")


main()
