//! p11-kit's module registrations, so that `module-name=softhsm2` finds a
//! module the way p11-kit does: a file `NAME.module` in one of p11-kit's
//! configuration folders, whose `module:` line gives the library (a bare
//! file name is looked for in p11-kit's module folder). Debian's `softhsm2`
//! and `opensc-pkcs11` packages register their modules this way.
//!
//! Read by hand rather than through libp11-kit: certmint needs one line of
//! each file, and linking p11-kit would load every registered module into
//! the process (a customer's HSM library among them) just to read a name.

use std::path::{Path, PathBuf};

/// The most a registration file may hold: p11-kit's are a few lines.
const MAX_MODULE_FILE: u64 = 64 * 1024;

/// Why a `module-name` could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// No registration of that name.
    #[error("pkcs11 URI: no p11-kit module is registered as {} (registered: {registered}); give module-path= instead", crate::text::quoted(.name))]
    NotRegistered {
        /// The name asked for.
        name: String,
        /// The names that are registered, or "none".
        registered: String,
    },
    /// A registration without a usable `module:` line.
    #[error("p11-kit registration {}: {reason}", crate::text::quoted(&.file.display().to_string()))]
    Unusable {
        /// The `.module` file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A name that cannot be a registration's file name.
    #[error("pkcs11 URI: module-name {} is not a module name (letters, digits, '-', '_', '.')", crate::text::quoted(.0))]
    BadName(String),
}

impl RegistryError {
    /// A module name is an argument: naming one that is not registered, or
    /// whose registration is unusable, is a usage error.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Usage
    }
}

/// Where p11-kit's registrations and modules are.
#[derive(Debug, Clone)]
pub struct Registry {
    /// Configuration folders, later ones overriding earlier ones for the
    /// same name (the administrator's `/etc` over the packages' `/usr`).
    pub config_dirs: Vec<PathBuf>,
    /// Where a module given by a bare file name is.
    pub module_dir: PathBuf,
}

impl Registry {
    /// Debian's p11-kit folders.
    pub fn system() -> Self {
        Registry {
            config_dirs: vec![
                PathBuf::from("/usr/share/p11-kit/modules"),
                PathBuf::from("/etc/pkcs11/modules"),
            ],
            module_dir: PathBuf::from(format!(
                "/usr/lib/{}-linux-gnu/pkcs11",
                std::env::consts::ARCH
            )),
        }
    }

    /// The library registered as `name`.
    pub fn module_path(&self, name: &str) -> Result<PathBuf, RegistryError> {
        let valid = !name.is_empty()
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return Err(RegistryError::BadName(name.to_owned()));
        }
        let file = self
            .config_dirs
            .iter()
            .rev()
            .map(|dir| dir.join(format!("{name}.module")))
            .find(|file| file.is_file());
        let Some(file) = file else {
            return Err(RegistryError::NotRegistered {
                name: name.to_owned(),
                registered: self.names().join(", ").if_empty("none"),
            });
        };
        let unusable = |reason: String| RegistryError::Unusable {
            file: file.clone(),
            reason,
        };
        let text = crate::input::read_capped(&file, MAX_MODULE_FILE)
            .map_err(|e| unusable(e.to_string()))?;
        let text = String::from_utf8(text).map_err(|_| unusable("not UTF-8 text".into()))?;
        let module = module_line(&text).ok_or_else(|| unusable("has no module: line".into()))?;
        let path = Path::new(module);
        Ok(if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.module_dir.join(path)
        })
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .config_dirs
            .iter()
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flatten()
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".module").map(str::to_owned)
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// The module to load when a URI names none: p11-kit's proxy, which loads
/// every module p11-kit has registered, when it is installed. Never a test
/// module such as SoftHSM2: production would then provision into whatever
/// token a test left behind.
pub fn default_module() -> Result<PathBuf, super::Pkcs11Error> {
    let proxy = PathBuf::from(format!(
        "/usr/lib/{}-linux-gnu/p11-kit-proxy.so",
        std::env::consts::ARCH
    ));
    if proxy.is_file() {
        return Ok(proxy);
    }
    let registered = Registry::system().names().join(", ");
    Err(super::Pkcs11Error::NoModule {
        registered: if registered.is_empty() {
            "none".into()
        } else {
            registered
        },
        proxy: proxy.display().to_string(),
    })
}

/// The value of the `module:` line of a registration (p11-kit's format:
/// `key: value` lines, `#` comments).
fn module_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "module")
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

trait IfEmpty {
    fn if_empty(self, instead: &str) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, instead: &str) -> String {
        if self.is_empty() {
            instead.to_owned()
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(dir: &Path) -> Registry {
        let usr = dir.join("usr");
        let etc = dir.join("etc");
        std::fs::create_dir_all(&usr).unwrap();
        std::fs::create_dir_all(&etc).unwrap();
        Registry {
            config_dirs: vec![usr, etc],
            module_dir: dir.join("lib"),
        }
    }

    #[test]
    fn a_registration_names_its_module_absolute_or_in_the_module_folder() {
        let dir = tempfile::tempdir().unwrap();
        let r = registry(dir.path());
        std::fs::write(
            r.config_dirs[0].join("softhsm2.module"),
            "# comment\n\nmodule: /usr/lib/softhsm/libsofthsm2.so\n",
        )
        .unwrap();
        std::fs::write(
            r.config_dirs[0].join("opensc-pkcs11.module"),
            "module: opensc-pkcs11.so\ncritical: no\n",
        )
        .unwrap();
        assert_eq!(
            r.module_path("softhsm2").unwrap(),
            PathBuf::from("/usr/lib/softhsm/libsofthsm2.so")
        );
        assert_eq!(
            r.module_path("opensc-pkcs11").unwrap(),
            dir.path().join("lib/opensc-pkcs11.so")
        );
        assert_eq!(r.names(), ["opensc-pkcs11", "softhsm2"]);
    }

    #[test]
    fn the_administrators_registration_overrides_the_packages() {
        let dir = tempfile::tempdir().unwrap();
        let r = registry(dir.path());
        std::fs::write(r.config_dirs[0].join("hsm.module"), "module: /a.so\n").unwrap();
        std::fs::write(r.config_dirs[1].join("hsm.module"), "module: /b.so\n").unwrap();
        assert_eq!(r.module_path("hsm").unwrap(), PathBuf::from("/b.so"));
    }

    #[test]
    fn unknown_names_bad_names_and_empty_registrations_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let r = registry(dir.path());
        std::fs::write(r.config_dirs[0].join("empty.module"), "# nothing\n").unwrap();
        let err = r.module_path("vendor").unwrap_err();
        assert!(
            err.to_string().contains("registered: empty"),
            "the message lists what is registered: {err}"
        );
        assert!(matches!(
            r.module_path("empty"),
            Err(RegistryError::Unusable { .. })
        ));
        for bad in ["", "../etc/passwd", ".hidden", "a/b"] {
            assert_eq!(
                r.module_path(bad),
                Err(RegistryError::BadName(bad.to_owned()))
            );
        }
    }
}
