fn main() {
    let _ = rlm_rust::config::parse_duration("1");
}
