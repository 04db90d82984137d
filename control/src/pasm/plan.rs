//! The planner (`specs/pasm.md` §6.1): one action per step, in order, each with
//! its backend and the gates' verdict. Pure: nothing is executed.

use serde::Serialize;

use super::asm::disasm_step;
use super::gates::{Backend, Gates, Verdict};
use super::program::Program;

/// One planned action.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    /// Step index.
    pub index: usize,
    /// Op.
    pub op: &'static str,
    /// Backend it will run on.
    pub backend: &'static str,
    /// `allow` or `refuse`.
    pub verdict: &'static str,
    /// Why it would be refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The action, in the assembler's text form.
    pub action: String,
}

/// A plan: the program's actions in order.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Actions.
    pub steps: Vec<PlannedStep>,
    /// How many would be refused.
    pub refused: usize,
}

impl Plan {
    /// Plans `program` under `gates`.
    pub fn new(program: &Program, gates: &Gates) -> Plan {
        let mut refused = 0;
        let steps = program
            .steps
            .iter()
            .enumerate()
            .map(|(index, s)| {
                let (verdict, reason) = match gates.check(index, s) {
                    Verdict::Allow => ("allow", None),
                    Verdict::Refuse { pointer, reason } => {
                        refused += 1;
                        ("refuse", Some(format!("{pointer}: {reason}")))
                    }
                };
                PlannedStep {
                    index,
                    op: s.op(),
                    backend: Backend::of(s).name(),
                    verdict,
                    reason,
                    action: disasm_step(s),
                }
            })
            .collect();
        Plan { steps, refused }
    }

    /// Human-readable form: one line per step.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.steps {
            out.push_str(&format!(
                "{:>6}  {:<13} {:<10} {}\n",
                s.index, s.op, s.backend, s.action
            ));
            if let Some(r) = &s.reason {
                out.push_str(&format!("        REFUSED: {r}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_keeps_order_and_marks_refusals() {
        let p = Program::parse(
            br#"[{"op":"state.set","scope":"s","key":"k","value":"v"},
                 {"op":"pkt.send","target":"udp://1.1.1.1:53","payload":"x"},
                 {"op":"barrier.sleep","ms":3}]"#,
        )
        .unwrap();
        let plan = Plan::new(&p, &Gates::default());
        let ops: Vec<_> = plan
            .steps
            .iter()
            .map(|s| (s.index, s.op, s.verdict))
            .collect();
        assert_eq!(
            ops,
            [
                (0, "state.set", "allow"),
                (1, "pkt.send", "refuse"),
                (2, "barrier.sleep", "allow")
            ]
        );
        assert_eq!(plan.refused, 1);
        let text = plan.render();
        assert!(text.contains("REFUSED: /1/target"), "{text}");
        assert!(text.contains("sleep 3"), "{text}");
    }
}
