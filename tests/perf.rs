fn main() {
    perfgate::harness::main()
}
