//! Checking a package's signature against the trust store, and an update's signer
//! against the installed version's (key continuity). Each refusal names its reason.

use super::{fingerprint, KeyRow, KeyState, PublisherKey, Signer, NAMESPACE};

/// What an upload brought to be checked.
pub struct SignatureCheck<'a> {
    /// The plugin's name, from its manifest.
    pub plugin: &'a str,
    /// The content list as the daemon rendered it from the files it received.
    pub contents: &'a [u8],
    /// The detached SSHSIG signature (armored), if the caller sent one.
    pub signature: Option<&'a str>,
    /// `[install] require_signature`.
    pub required: bool,
}

/// The signer of a package, `None` for an unsigned one this supervisor accepts; an
/// error says why the package is refused: unsigned, wrongly signed, signed by an
/// untrusted, pending, removed or revoked key, or by one not trusted for the name.
pub fn verify(
    check: &SignatureCheck<'_>,
    key_of: impl Fn(&str) -> Option<KeyRow>,
) -> Result<Option<Signer>, String> {
    let Some(armored) = check.signature else {
        if check.required {
            return Err(format!(
                "the package is unsigned, and this supervisor accepts only signed packages ([install] require_signature): \
                 sign its content list (`plexichat plugin contents PACKAGE | ssh-keygen -Y sign -n {NAMESPACE} -f KEY > PACKAGE.sig`)"
            ));
        }
        return Ok(None);
    };
    let sig = ssh_key::SshSig::from_pem(armored.trim().as_bytes()).map_err(|e| {
        format!("the signature is not an SSH signature (`ssh-keygen -Y sign -n {NAMESPACE}` makes one): {e}")
    })?;
    if sig.namespace() != NAMESPACE {
        return Err(format!(
            "the signature was made for namespace `{}`, not `{NAMESPACE}`: sign with `ssh-keygen -Y sign -n {NAMESPACE}`",
            crate::package::clip(sig.namespace())
        ));
    }
    let fpr = fingerprint(sig.public_key());
    let Some(row) = key_of(&fpr) else {
        return Err(format!(
            "the package is signed by an untrusted key {fpr}: no publisher key with that fingerprint is in the trust store (`plexichat trust list`)"
        ));
    };
    let key = PublisherKey::parse(&row.public_key)
        .map_err(|e| format!("the trust store's key {fpr} cannot be read: {e}"))?;
    key.ssh().verify(NAMESPACE, check.contents, &sig).map_err(|_| {
        format!(
            "the signature by {}'s key {fpr} does not verify: the package's files are not what that key signed \
             (a changed byte, or the signature of another package)",
            row.publisher
        )
    })?;
    let whose = format!("{}'s key {fpr}", row.publisher);
    match row.state {
        KeyState::Trusted => {}
        KeyState::Proposed => {
            return Err(format!(
                "the package is signed by {whose}, which awaits a second admin (`plexichat trust add-key` by another admin)"
            ))
        }
        KeyState::Removed => {
            return Err(format!(
                "the package is signed by {whose}, which {} removed from the trust store",
                row.ended_by.as_deref().unwrap_or("an admin")
            ))
        }
        KeyState::Revoked => {
            return Err(format!(
                "the package is signed by {whose}, which was REVOKED ({})",
                row.end_comment.as_deref().unwrap_or("no reason given")
            ))
        }
    }
    if !row.plugins.matches(check.plugin) {
        return Err(format!(
            "the package is signed by {whose}, which is trusted only for plugins matching `{}`, not `{}`",
            row.plugins, check.plugin
        ));
    }
    Ok(Some(Signer {
        fingerprint: fpr,
        publisher: row.publisher,
    }))
}

/// An update must come from the publisher of the installed version (when that one
/// was signed): another publisher's key, or no signature, is refused.
pub fn check_continuity(
    plugin: &str,
    installed: Option<&Signer>,
    update: Option<&Signer>,
) -> Result<(), String> {
    let Some(installed) = installed else {
        return Ok(());
    };
    match update {
        None => Err(format!(
            "`{plugin}` was installed signed by {} ({}); an update must be signed by that publisher (key continuity), but this one is unsigned",
            installed.publisher, installed.fingerprint
        )),
        Some(u) if u.publisher != installed.publisher => Err(format!(
            "the update is signed by publisher {} ({}), but `{plugin}` was installed from publisher {} ({}): an update must come from the same publisher (key continuity)",
            u.publisher, u.fingerprint, installed.publisher, installed.fingerprint
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::NamePattern;
    use super::*;

    /// A key, its store row (trusted for `pattern`), and a signer of messages.
    pub(crate) fn keypair(
        seed: u8,
        publisher: &str,
        pattern: &str,
    ) -> (ssh_key::PrivateKey, KeyRow) {
        let pair = ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]);
        let private = ssh_key::PrivateKey::from(pair);
        let public = PublisherKey::parse(&private.public_key().to_openssh().unwrap()).unwrap();
        let row = KeyRow {
            fingerprint: public.fingerprint(),
            publisher: publisher.into(),
            plugins: NamePattern::parse(pattern).unwrap(),
            public_key: public.openssh(),
            state: KeyState::Trusted,
            comment: "test".into(),
            proposed_by: "a".into(),
            proposed_at: 1,
            approved_by: Some("b".into()),
            approved_at: Some(2),
            ended_by: None,
            ended_at: None,
            end_comment: None,
        };
        (private, row)
    }

    fn sign(key: &ssh_key::PrivateKey, ns: &str, msg: &[u8]) -> String {
        key.sign(ns, ssh_key::HashAlg::Sha512, msg)
            .unwrap()
            .to_pem(ssh_key::LineEnding::LF)
            .unwrap()
    }

    fn check<'a>(
        plugin: &'a str,
        contents: &'a [u8],
        signature: Option<&'a str>,
    ) -> SignatureCheck<'a> {
        SignatureCheck {
            plugin,
            contents,
            signature,
            required: true,
        }
    }

    #[test]
    fn each_refusal_names_its_reason_and_the_good_case_passes() {
        let (acme, row) = keypair(1, "acme", "acme-*");
        let (other, _) = keypair(2, "evil", "*");
        let store = |state: KeyState| {
            let row = KeyRow {
                state,
                ..row.clone()
            };
            move |fpr: &str| (fpr == row.fingerprint).then(|| row.clone())
        };
        let list = b"plexichat-package-contents 1\n";
        let good = sign(&acme, NAMESPACE, list);
        let signer = verify(
            &check("acme-hi", list, Some(&good)),
            store(KeyState::Trusted),
        )
        .unwrap()
        .unwrap();
        assert_eq!(signer.publisher, "acme");
        assert_eq!(signer.fingerprint, row.fingerprint);

        let refused =
            |c: SignatureCheck<'_>, state: KeyState| verify(&c, store(state)).unwrap_err();
        assert!(refused(check("acme-hi", list, None), KeyState::Trusted).contains("unsigned"));
        let optional = SignatureCheck {
            required: false,
            ..check("acme-hi", list, None)
        };
        assert_eq!(verify(&optional, store(KeyState::Trusted)).unwrap(), None);
        assert!(
            refused(check("acme-hi", b"other", Some(&good)), KeyState::Trusted)
                .contains("does not verify")
        );
        let e = refused(
            check("acme-hi", list, Some(&sign(&other, NAMESPACE, list))),
            KeyState::Trusted,
        );
        assert!(e.contains("untrusted key SHA256:"), "{e}");
        assert!(
            refused(check("hello", list, Some(&good)), KeyState::Trusted)
                .contains("only for plugins matching `acme-*`, not `hello`")
        );
        assert!(
            refused(check("acme-hi", list, Some(&good)), KeyState::Proposed)
                .contains("awaits a second admin")
        );
        assert!(
            refused(check("acme-hi", list, Some(&good)), KeyState::Removed).contains("removed")
        );
        assert!(
            refused(check("acme-hi", list, Some(&good)), KeyState::Revoked).contains("REVOKED")
        );
        let git = sign(&acme, "git", list);
        assert!(
            refused(check("acme-hi", list, Some(&git)), KeyState::Trusted)
                .contains("namespace `git`")
        );
        assert!(
            refused(check("acme-hi", list, Some("junk")), KeyState::Trusted)
                .contains("not an SSH signature")
        );
    }

    #[test]
    fn an_update_keeps_its_publisher() {
        let s = |p: &str| Signer {
            fingerprint: format!("SHA256:{p}"),
            publisher: p.into(),
        };
        assert!(check_continuity("x", None, None).is_ok());
        assert!(check_continuity("x", None, Some(&s("a"))).is_ok());
        assert!(check_continuity("x", Some(&s("a")), Some(&s("a"))).is_ok());
        assert!(check_continuity("x", Some(&s("a")), None)
            .unwrap_err()
            .contains("unsigned"));
        let e = check_continuity("x", Some(&s("a")), Some(&s("b"))).unwrap_err();
        assert!(e.contains("same publisher"), "{e}");
    }
}
