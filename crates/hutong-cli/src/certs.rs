//! `hutong certs`: a development PKI for the local run and the tests — a CA,
//! the gateway's server certificate, one client certificate per identity of
//! the policy file, and the CA's revocation list. Production deployments use
//! their own CA (e.g. the government's); the gateway only needs the files.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use hutong_config::Policy;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum CertsCommand {
    /// Create the CA (unless it exists), the gateway's certificate and a client certificate for every identity of
    /// the policy that lacks one; writes an empty revocation list if none exists. Each client identity also gets
    /// `<identity>.p12` for a browser (the console; password `hutong`).
    Init {
        /// Output directory (keys are written mode 0600).
        #[arg(long, default_value = ".hutong/pki")]
        out: PathBuf,
        /// The policy file whose departments and admins get client certificates.
        #[arg(long, default_value = "deploy/local/policy.toml")]
        policy: PathBuf,
        /// Extra DNS names of the gateway's certificate (localhost and 127.0.0.1 are always in it).
        #[arg(long)]
        server_name: Vec<String>,
        /// Validity of the certificates, in days.
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// Make everything anew, the CA included.
        #[arg(long)]
        force: bool,
    },
    /// Revoke the client certificate of an identity: adds it to the CA's revocation list (`crl.pem`).
    /// A running gateway applies the new list on SIGHUP.
    Revoke {
        /// Directory made by `hutong certs init`.
        #[arg(long, default_value = ".hutong/pki")]
        dir: PathBuf,
        /// The identity whose certificate (`<identity>.pem`) is revoked.
        identity: String,
    },
}

pub(crate) fn run(cmd: CertsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CertsCommand::Init { out, policy, server_name, days, force } => {
            init(&out, &policy, &server_name, days, force)?;
        }
        CertsCommand::Revoke { dir, identity } => revoke(&dir, &identity)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a file atomically (a temp file renamed over it): a gateway re-reading `crl.pem`
/// on SIGHUP never sees it half written. Keys get mode 0600 before they hold anything.
fn write(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, b"").with_context(|| format!("writing {}", tmp.display()))?;
    if secret {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// The password of the development bundles (`<identity>.p12`): a browser asks for one on import.
pub(crate) const BUNDLE_PASSWORD: &str = "hutong";

/// A PKCS#12 bundle of an identity's certificate, key and the CA, for a browser (the console).
fn browser_bundle(name: &str, cert: &str, key: &str, ca: &str) -> anyhow::Result<Vec<u8>> {
    use openssl::{pkcs12::Pkcs12, pkey::PKey, stack::Stack, x509::X509};
    let mut chain = Stack::new()?;
    chain.push(X509::from_pem(ca.as_bytes())?)?;
    let (key, cert) = (PKey::private_key_from_pem(key.as_bytes())?, X509::from_pem(cert.as_bytes())?);
    let bundle = Pkcs12::builder()
        .name(name)
        .pkey(&key)
        .cert(&cert)
        .ca(chain)
        .build2(BUNDLE_PASSWORD)
        .with_context(|| format!("the PKCS#12 bundle of {name}"))?;
    Ok(bundle.to_der()?)
}

/// [`write`] for binary content, always private (a bundle holds a key).
fn write_bytes(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, b"").with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// A fresh positive serial number.
fn serial(name: &str) -> SerialNumber {
    use sha2::{Digest as _, Sha256};
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut bytes = Sha256::digest(format!("{name}\0{}\0{}", now.as_nanos(), std::process::id()))[..16].to_vec();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn params(name: &str, days: i64) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::OrganizationName, "Hutong development PKI");
    p.distinguished_name.push(DnType::CommonName, name);
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(days);
    p.serial_number = Some(serial(name));
    p
}

fn load_ca(dir: &Path) -> anyhow::Result<Issuer<'static, KeyPair>> {
    let key = std::fs::read_to_string(dir.join("ca.key")).context("reading ca.key")?;
    let pem = std::fs::read_to_string(dir.join("ca.pem")).context("reading ca.pem")?;
    Ok(Issuer::from_ca_cert_pem(&pem, KeyPair::from_pem(&key)?)?)
}

/// Issues what `policy` lacks in `out` (the CA first when there is none); `force` renews all.
pub(crate) fn init(out: &Path, policy: &Path, server_names: &[String], days: i64, force: bool) -> anyhow::Result<()> {
    let policy = Policy::load(policy)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    if force || !out.join("ca.pem").exists() {
        // A name of its own: another deployment's CA is then an unknown issuer, not a forged one.
        let mut p = params(&format!("Hutong development CA {}", hex::encode(&serial("ca").to_bytes()[..4])), days);
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        write(&out.join("ca.pem"), &p.self_signed(&key)?.pem(), false)?;
        write(&out.join("ca.key"), &key.serialize_pem(), true)?;
        let _ = std::fs::remove_file(out.join("revoked.txt"));
        let _ = std::fs::remove_file(out.join("crl.pem"));
        eprintln!("created the CA: {}", out.join("ca.pem").display());
    }
    let ca = load_ca(out)?;
    let ca_pem = std::fs::read_to_string(out.join("ca.pem")).context("reading ca.pem")?;
    let issue = |file: &str, mut p: CertificateParams, usage: ExtendedKeyUsagePurpose| -> anyhow::Result<()> {
        let path = out.join(format!("{file}.pem"));
        let bundle = out.join(format!("{file}.p12"));
        let client = usage == ExtendedKeyUsagePurpose::ClientAuth;
        if path.exists() && !force {
            // A PKI made before the bundles were: the browser's bundle from the files there.
            if client && !bundle.exists() {
                let (cert, key) =
                    (std::fs::read_to_string(&path)?, std::fs::read_to_string(out.join(format!("{file}.key")))?);
                write_bytes(&bundle, &browser_bundle(file, &cert, &key, &ca_pem)?)?;
            }
            return Ok(());
        }
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![usage];
        p.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &ca)?.pem();
        write(&path, &cert, false)?;
        write(&out.join(format!("{file}.key")), &key.serialize_pem(), true)?;
        if client {
            write_bytes(&bundle, &browser_bundle(file, &cert, &key.serialize_pem(), &ca_pem)?)?;
        }
        eprintln!("issued {}", path.display());
        Ok(())
    };
    let mut server = params("hutong-gateway", days);
    server.subject_alt_names =
        vec![SanType::DnsName("localhost".try_into()?), SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into())];
    for n in server_names {
        server.subject_alt_names.push(SanType::DnsName(n.as_str().try_into()?));
    }
    issue("server", server, ExtendedKeyUsagePurpose::ServerAuth)?;
    for identity in policy.identities() {
        let name = identity.principal.name();
        let Some(cert_name) = &identity.certificate else {
            eprintln!("skipped {name}: the policy gives it no certificate name");
            continue;
        };
        let mut p = params(name, days);
        p.subject_alt_names = vec![SanType::DnsName(cert_name.as_str().try_into()?)];
        issue(name, p, ExtendedKeyUsagePurpose::ClientAuth)?;
    }
    if !out.join("crl.pem").exists() {
        write_crl(out, &ca)?;
    }
    Ok(())
}

/// Serials (hex) of the revoked certificates.
fn revoked(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("revoked.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn write_crl(dir: &Path, ca: &Issuer<'_, KeyPair>) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    let serials = revoked(dir);
    let revoked_certs = serials
        .iter()
        .map(|s| {
            Ok(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&hex::decode(s)?),
                revocation_time: now,
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let crl = CertificateRevocationListParams {
        this_update: now - Duration::minutes(5),
        next_update: now + Duration::days(30),
        crl_number: SerialNumber::from((serials.len() as u64) + 1),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(ca)?;
    write(&dir.join("crl.pem"), &crl.pem()?, false)
}

fn revoke(dir: &Path, identity: &str) -> anyhow::Result<()> {
    let path = dir.join(format!("{identity}.pem"));
    let pem = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let der = <rustls_pki_types::CertificateDer<'_> as rustls_pki_types::pem::PemObject>::from_pem_slice(&pem)
        .with_context(|| format!("{}: not a PEM certificate", path.display()))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let serial = hex::encode(cert.raw_serial());
    let mut serials = revoked(dir);
    if !serials.contains(&serial) {
        serials.push(serial.clone());
        write(&dir.join("revoked.txt"), &(serials.join("\n") + "\n"), false)?;
    }
    write_crl(dir, &load_ca(dir)?)?;
    eprintln!(
        "revoked {identity} (serial {serial}); {} now lists {} certificate(s)",
        dir.join("crl.pem").display(),
        serials.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_identity_gets_a_bundle_a_browser_can_import() {
        let dir = tempfile::tempdir().unwrap();
        let policy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local/policy.toml");
        init(dir.path(), &policy, &[], 30, false).unwrap();
        let der = std::fs::read(dir.path().join("gongan.p12")).unwrap();
        let parsed = openssl::pkcs12::Pkcs12::from_der(&der).unwrap().parse2(BUNDLE_PASSWORD).unwrap();
        let cert = parsed.cert.unwrap();
        let cn = cert.subject_name().entries_by_nid(openssl::nid::Nid::COMMONNAME).next().unwrap();
        assert_eq!(String::from_utf8_lossy(cn.data().as_slice()), "gongan");
        assert!(parsed.pkey.unwrap().public_eq(&cert.public_key().unwrap()), "the key of the certificate");
        assert_eq!(parsed.ca.map_or(0, |c| c.len()), 1, "with the CA");
        assert!(openssl::pkcs12::Pkcs12::from_der(&der).unwrap().parse2("wrong").is_err());
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(dir.path().join("gongan.p12")).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!dir.path().join("server.p12").exists(), "the server has no browser bundle");
        // A PKI made before bundles existed gets them on the next init.
        std::fs::remove_file(dir.path().join("gongan.p12")).unwrap();
        init(dir.path(), &policy, &[], 30, false).unwrap();
        assert!(dir.path().join("gongan.p12").exists());
    }
}
