use super::*;

#[test]
fn file_type_table_matches_llama_h() {
    assert_eq!(file_type_name(0), "ALL_F32");
    assert_eq!(file_type_name(15), "Q4_K_M");
    assert_eq!(file_type_name(21), "Q2_K_S");
    assert_eq!(file_type_name(32), "BF16");
    assert_eq!(file_type_name(37), "TQ2_0");
    assert_eq!(file_type_name(5), "UNKNOWN");
}

#[test]
fn ggml_sizes_give_bits_per_weight() {
    // Q4_K: 144 bytes per 256 weights = 4.5 bpw.
    assert_eq!(ggml_type_size(12), Some((256, 144)));
    assert_eq!(ggml_type_size(4), None);
    assert_eq!(ggml_type_size(31), None);
}
