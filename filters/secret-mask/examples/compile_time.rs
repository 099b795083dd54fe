//! Prints how long each default rule takes to compile (a development aid).
fn main() {
    for spec in tollgate_secret_mask::rules::default_rules() {
        let t = std::time::Instant::now();
        let r = tollgate_secret_mask::rules::Rule::compile(&spec);
        println!("{:20} {:?} ok={}", spec.id, t.elapsed(), r.is_ok());
    }
}
