// A small crate for the DWARF index's seed corpus (fuzz/seeds.py compiles
// it to an object file with rustc -g): Rust's enums (variant parts),
// generics, an async fn's state machine, a trait object.
#![allow(dead_code)]
pub struct Point { pub x: u32, pub y: u32 }
pub enum Shape { Circle { at: Point, r: f64 }, Square(Point, u32), Empty }
pub struct Node { pub next: Option<Box<Node>>, pub shape: Shape }
pub trait Area { fn area(&self) -> f64; }
impl Area for Shape {
    fn area(&self) -> f64 {
        match self { Shape::Circle { r, .. } => r * r * 3.14, Shape::Square(_, s) => (*s * *s) as f64, Shape::Empty => 0.0 }
    }
}
async fn leaf(p: Point) -> u32 { p.x + p.y }
pub async fn run(n: Node) -> u32 {
    let a: &dyn Area = &n.shape;
    let s = a.area() as u32;
    s + leaf(Point { x: 1, y: 2 }).await
}
#[no_mangle]
pub extern "C" fn seed_entry() -> usize {
    let f = run(Node { next: None, shape: Shape::Empty });
    std::mem::size_of_val(&f) + std::mem::size_of::<Option<u32>>()
}
