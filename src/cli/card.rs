//! `certmint card …`: smart cards in PC/SC readers. For now one
//! subcommand, the virtual card for rehearsals; the provisioning commands
//! join it here.

use anyhow::Result;
use clap::Subcommand;

use super::vcard::VirtualArgs;

/// The `card` command group.
#[derive(Subcommand)]
pub enum CardCommand {
    /// Put a virtual PIV card into a vsmartcard-vpcd reader of pcscd (rehearsals and tests).
    Virtual(VirtualArgs),
}

/// Runs one `card` subcommand.
pub fn card(command: CardCommand) -> Result<()> {
    match command {
        CardCommand::Virtual(args) => super::vcard::run(args),
    }
}
