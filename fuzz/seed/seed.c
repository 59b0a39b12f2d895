/* A small program for the DWARF index's seed corpus (fuzz/seeds.py builds
 * it with gcc -g, DWARF 4 and 5): structs, a union, an enum, a list, a
 * function pointer, an array, thread-local and global variables. */
#include <stdio.h>

struct point { int x, y; };
union word { unsigned long w; unsigned char b[8]; };
enum kind { CIRCLE, SQUARE };
struct shape { enum kind kind; struct point at; double size; };
struct node { struct node *next; struct shape shape; union word tag; };

static __thread int depth;
struct node nodes[4];
int (*callback)(struct node *);

static int walk(struct node *n)
{
	int sum = 0;
	for (depth = 0; n; n = n->next, depth++)
		sum += n->shape.at.x * n->shape.at.y + (int)n->tag.b[0];
	return sum;
}

int main(int argc, char **argv)
{
	(void)argv;
	for (int i = 0; i < 3; i++) {
		nodes[i].next = &nodes[i + 1];
		nodes[i].shape = (struct shape){i & 1 ? SQUARE : CIRCLE, {i, argc}, 1.5 * i};
		nodes[i].tag.w = (unsigned long)i * 0x0101010101010101ul;
	}
	callback = walk;
	printf("%d\n", callback(nodes));
	return 0;
}
