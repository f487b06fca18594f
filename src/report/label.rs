//! One `Label: value` line of a report section, as a table entry: the metrics it sets, its unit
//! shift, the eras its wording belongs to. Both the trtllm-bench tables (`eras`) and the
//! serving block's (`serve`) are written with these constructors, above this module.

/// Era bits: a report starts as "any era" and each piece of evidence narrows the set.
pub(crate) const A: u8 = 1;
pub(crate) const B: u8 = 2;
pub(crate) const C: u8 = 4;
pub(crate) const CP: u8 = 8;
pub(crate) const D: u8 = 16;
pub(crate) const ALL: u8 = A | B | C | CP | D;

/// Lines whose position in PERFORMANCE OVERVIEW tells eras C, C' and D apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    None,
    TotalOutput,
    TotalToken,
    PerGpu,
    TotalLatency,
}

/// One `Label: value` line: the metrics it sets (several when two names mean the same value),
/// a decimal shift for unit conversion, and the eras its wording belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LabelDef {
    pub label: &'static str,
    pub metrics: &'static [&'static str],
    /// The value is multiplied by 10^shift (seconds to milliseconds: 3).
    pub shift: i32,
    pub eras: u8,
    pub streaming: bool,
    pub order: Order,
    /// The line sets `Report::failed_requests`, not a metric.
    pub failed_requests: bool,
}

pub(super) const fn l(label: &'static str, metrics: &'static [&'static str], eras: u8) -> LabelDef {
    LabelDef {
        label,
        metrics,
        shift: 0,
        eras,
        streaming: false,
        order: Order::None,
        failed_requests: false,
    }
}

pub(super) const fn ordered(
    label: &'static str,
    metrics: &'static [&'static str],
    eras: u8,
    order: Order,
) -> LabelDef {
    LabelDef {
        order,
        ..l(label, metrics, eras)
    }
}

pub(super) const fn streaming(
    label: &'static str,
    metrics: &'static [&'static str],
    eras: u8,
) -> LabelDef {
    LabelDef {
        streaming: true,
        ..l(label, metrics, eras)
    }
}

pub(super) const fn failed(label: &'static str) -> LabelDef {
    LabelDef {
        failed_requests: true,
        ..l(label, &[], ALL)
    }
}

pub(super) const fn scaled(
    label: &'static str,
    metrics: &'static [&'static str],
    eras: u8,
    shift: i32,
) -> LabelDef {
    LabelDef {
        shift,
        ..l(label, metrics, eras)
    }
}
