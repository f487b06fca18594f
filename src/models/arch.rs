//! Architecture facts of a model (`architectures:` in `model_configs/models.yaml`): the shapes
//! the physical limits are computed from. Plain data plus the few derived quantities every
//! caller would otherwise recompute differently.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Arch {
    /// Total parameters, billions (model card).
    pub params_b: f64,
    /// Parameters a token passes through (MoE); absent for dense models (= total).
    pub active_params_b: Option<f64>,
    pub layers: u32,
    pub hidden: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub vocab: u32,
    pub intermediate: u32,
    #[serde(default)]
    pub tied_embeddings: bool,
    pub experts: Option<u32>,
    pub experts_active: Option<u32>,
    pub moe_intermediate: Option<u32>,
    /// MLA (DeepSeek): the cached latent's width.
    pub kv_lora_rank: Option<u32>,
    /// MLA: the decoupled RoPE key width, cached next to the latent.
    pub qk_rope_head_dim: Option<u32>,
    /// Layers with attention (NAS models drop some); absent = all.
    pub attention_layers: Option<u32>,
    /// Window of the local-attention layers, tokens.
    pub sliding_window: Option<u32>,
    /// Layers attending to the whole context when `sliding_window` is set.
    pub full_attention_layers: Option<u32>,
}

impl Arch {
    /// Checks what serde cannot: sizes positive, active <= total, MoE and window fields complete.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.params_b.is_finite() && self.params_b > 0.0) {
            return Err(format!(
                "`params_b` must be positive, got {}",
                self.params_b
            ));
        }
        if let Some(a) = self.active_params_b
            && !(a.is_finite() && a > 0.0 && a <= self.params_b)
        {
            return Err(format!(
                "`active_params_b` must be positive and at most `params_b` ({}), got {a}",
                self.params_b
            ));
        }
        for (field, v) in [
            ("layers", self.layers),
            ("hidden", self.hidden),
            ("heads", self.heads),
            ("kv_heads", self.kv_heads),
            ("head_dim", self.head_dim),
            ("vocab", self.vocab),
            ("intermediate", self.intermediate),
        ] {
            if v == 0 {
                return Err(format!("`{field}` must be positive, got 0"));
            }
        }
        if self.kv_heads > self.heads {
            return Err(format!(
                "`kv_heads` ({}) cannot exceed `heads` ({})",
                self.kv_heads, self.heads
            ));
        }
        match (self.experts, self.experts_active) {
            (None, None) => {}
            (Some(e), Some(k)) if k >= 1 && k <= e => {}
            (Some(e), Some(k)) => {
                return Err(format!(
                    "`experts_active` must be 1..=`experts` ({e}), got {k}"
                ));
            }
            _ => return Err("`experts` and `experts_active` go together".into()),
        }
        if self.experts.is_some() && self.active_params_b.is_none() {
            return Err("an MoE architecture needs `active_params_b`".into());
        }
        if self.kv_lora_rank.is_some() != self.qk_rope_head_dim.is_some() {
            return Err("MLA needs both `kv_lora_rank` and `qk_rope_head_dim`".into());
        }
        if let Some(a) = self.attention_layers
            && (a == 0 || a > self.layers)
        {
            return Err(format!(
                "`attention_layers` must be 1..=`layers` ({}), got {a}",
                self.layers
            ));
        }
        match (self.sliding_window, self.full_attention_layers) {
            (None, None) => {}
            (Some(w), Some(f)) if w > 0 && f <= self.attention_layers() => {}
            (Some(_), Some(f)) => {
                return Err(format!(
                    "`full_attention_layers` ({f}) exceeds the attention layers ({}), or the window is 0",
                    self.attention_layers()
                ));
            }
            _ => return Err("`sliding_window` and `full_attention_layers` go together".into()),
        }
        Ok(())
    }

    pub fn params(&self) -> f64 {
        self.params_b * 1e9
    }

    pub fn active_params(&self) -> f64 {
        self.active_params_b.unwrap_or(self.params_b) * 1e9
    }

    pub fn is_moe(&self) -> bool {
        self.experts.is_some()
    }

    pub fn attention_layers(&self) -> u32 {
        self.attention_layers.unwrap_or(self.layers)
    }

    /// Layers attending to the whole context and layers attending to a window (with the window).
    pub fn attention_split(&self) -> (u32, u32, u32) {
        let all = self.attention_layers();
        match (self.sliding_window, self.full_attention_layers) {
            (Some(w), Some(f)) => (f, all - f, w),
            _ => (all, 0, 0),
        }
    }

    /// KV-cache elements one token adds to one attention layer: K and V per KV head, or the MLA
    /// latent plus its RoPE key.
    pub fn kv_elems_per_layer(&self) -> f64 {
        match (self.kv_lora_rank, self.qk_rope_head_dim) {
            (Some(r), Some(rope)) => f64::from(r + rope),
            _ => 2.0 * f64::from(self.kv_heads) * f64::from(self.head_dim),
        }
    }

    /// Width of a query-key dot product and of a value row, for attention FLOPs. MLA's prefill
    /// form (uncompressed heads, QK width = head_dim + RoPE) is the cheaper of its two forms.
    pub fn qk_v_dims(&self) -> (f64, f64) {
        let d = f64::from(self.head_dim);
        (d + f64::from(self.qk_rope_head_dim.unwrap_or(0)), d)
    }

    /// Parameters of the matrix multiplies one token goes through, lm_head included: the input
    /// embedding is a table lookup, not a multiply, so it is taken out when it is not shared
    /// with lm_head.
    pub fn matmul_params_active(&self) -> f64 {
        let embedding = f64::from(self.vocab) * f64::from(self.hidden);
        if self.tied_embeddings {
            self.active_params()
        } else {
            self.active_params() - embedding
        }
    }

    /// The lm_head's parameters (vocab x hidden).
    pub fn lm_head_params(&self) -> f64 {
        f64::from(self.vocab) * f64::from(self.hidden)
    }

    /// Parameters of all routed experts: what an MoE step reads only for the experts its tokens
    /// pick. Derived from the published totals: total - active is the (e - k)/e share of the
    /// routed experts a token does not pick.
    pub fn routed_expert_params(&self) -> f64 {
        match self.experts {
            Some(_) => {
                // What is neither always active nor shared: total minus active is exactly the
                // routed experts a token does not pick.
                let unpicked = self.params() - self.active_params();
                let (e, k) = (
                    f64::from(self.experts.unwrap_or(1)),
                    f64::from(self.experts_active.unwrap_or(1)),
                );
                if e > k { unpicked * e / (e - k) } else { 0.0 }
            }
            _ => 0.0,
        }
    }
}
