"""The model family: shapes (`shape.ModelShape`), parameter and FLOPs arithmetic (`flops`), the
decoder-only Transformer (`gpt.GPT`), its fused ops (`ops`) and the classic eager loop it is measured
against (`reference`). Nothing here knows training, budgets or files; `shape` and `flops` import no torch,
so config and the laws' callers can use them without it."""
