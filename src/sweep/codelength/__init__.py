"""Code length: a language model as a compressor. Standard compressors (`compressors`: gzip, xz, zstd),
the two-part description length and its frontier (`frontier`), and the section of `sweep fit` that puts a
sweep's prequential code beside them (`section`)."""
