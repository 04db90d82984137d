//! `pfs linerate` as a library (normative: `specs/linerate.md`): the probe
//! format ([`wire`]), receiver accounting ([`track`]), rate control ([`pace`]) —
//! all pure — and the loops that drive an I/O backend ([`run`]).

pub mod pace;
pub mod run;
pub mod track;
pub mod wire;
