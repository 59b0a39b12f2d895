/*
 * A conservative mark phase over a core's memory, for "does anything
 * reachable still reference X?" (a oneshot Sender leaked with Box::leak
 * exists in memory, yet nothing can ever send on it).
 *
 * Heap chunks are found by walking glibc's boundary tags (prev_size, size
 * | flags) from the start of each anonymous writable segment: the main
 * arena's [heap] starts with a chunk, a thread arena's heap with heap_info
 * (and the arena) before its first chunk, a large allocation is one mmapped
 * chunk.  A walk is accepted only if it tiles the segment exactly; a
 * segment that cannot be tiled is treated as one block, which can only make
 * more memory reachable (fewer reports, never a false one from this).
 */
#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "reach/reach.h"

struct seg {
	uint64_t lo, hi; /* dumped bytes */
	uint64_t end;    /* end of the mapping (memsz) */
	const unsigned char *data;
	bool heap;       /* anonymous + writable */
	bool writable;
	/* its blocks: [blk_lo, blk_hi) of reach.blocks, and per page the
	 * first of them that may hold an address in it (find_block) */
	size_t blk_lo, blk_hi;
	uint32_t *page_first;
};

struct block {
	uint64_t lo, hi;
	size_t seg;
};

struct reach {
	struct seg *segs;
	size_t nsegs;
	struct block *blocks; /* sorted by lo, disjoint */
	size_t nblocks;
	unsigned char *marked;
	unsigned char *has_target; /* per block: a target lies inside it */
	bool stray_targets;        /* a target outside every block */
	size_t *stack;
	size_t nstack, capstack;
};

static int cmp_seg(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int cmp_block(const void *a, const void *b)
{
	const struct block *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static bool push_block(struct reach *r, uint64_t lo, uint64_t hi, size_t seg)
{
	struct block *b = grow_room(r->blocks, r->nblocks + 1, sizeof(*b));
	if (!b)
		return false;
	r->blocks = b;
	r->blocks[r->nblocks++] = (struct block){lo, hi, seg};
	return true;
}

static uint64_t word_at(const struct seg *g, uint64_t addr)
{
	uint64_t w;
	memcpy(&w, g->data + (addr - g->lo), 8);
	return w;
}

/* Tile a heap segment with chunks starting at one of the first offsets. */
static void tile(struct reach *r, size_t si)
{
	const struct seg *g = &r->segs[si];
	size_t first = r->nblocks;
	for (uint64_t off = 0; off < 4096 && g->lo + off + 32 <= g->hi; off += 16) {
		uint64_t p = g->lo + off;
		size_t n = 0;
		r->nblocks = first;
		bool ok = true;
		while (p + 16 <= g->hi) {
			uint64_t size = word_at(g, p + 8) & ~(uint64_t)7;
			if (size < 32 || (size & 15) || size > g->hi - p) {
				ok = false;
				break;
			}
			/* user memory runs into the next chunk's prev_size */
			uint64_t hi = p + size + 8 <= g->hi ? p + size + 8 : g->hi;
			if (!push_block(r, p + 16, hi, si))
				return;
			n++;
			p += size;
		}
		if (ok && n && g->hi - p < 32)
			return;
	}
	/* Not a heap we understand: one block, scanned whole if reached. */
	r->nblocks = first;
	push_block(r, g->lo, g->hi, si);
}

static const struct seg *find_seg(const struct reach *r, uint64_t a)
{
	size_t lo = 0, hi = r->nsegs;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (r->segs[mid].lo <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct seg *g = &r->segs[lo - 1];
	return a < g->hi ? g : NULL;
}

/* The block holding @a among [lo, hi) (sorted by lo): the last one that
 * starts at or below it, if @a is below its end; -1 none. */
static long find_block_in(const struct reach *r, size_t lo, size_t hi, uint64_t a)
{
	size_t first = lo;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (r->blocks[mid].lo <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == first)
		return -1;
	const struct block *b = &r->blocks[lo - 1];
	return a < b->hi ? (long)(lo - 1) : -1;
}

/* Every word scanned is looked up here: its segment (a few dozen), then
 * the blocks of its page, not all of the heap's. */
static long find_block(const struct reach *r, uint64_t a)
{
	const struct seg *g = find_seg(r, a);
	if (!g || g->blk_lo == g->blk_hi)
		return -1;
	if (!g->page_first)
		return find_block_in(r, g->blk_lo, g->blk_hi, a);
	uint64_t p = (a - g->lo) >> 12;
	size_t lo = g->page_first[p], hi = (size_t)g->page_first[p + 1] + 1;
	return find_block_in(r, lo, hi < g->blk_hi ? hi : g->blk_hi, a);
}

/* Each segment's blocks (sorted, and a segment's are contiguous among
 * them) and its page table. */
static void index_blocks(struct reach *r)
{
	size_t b = 0;
	for (size_t i = 0; i < r->nsegs; i++) {
		struct seg *g = &r->segs[i];
		while (b < r->nblocks && r->blocks[b].lo < g->lo)
			b++;
		g->blk_lo = b;
		while (b < r->nblocks && r->blocks[b].lo < g->hi)
			b++;
		g->blk_hi = b;
		uint64_t npages = (g->hi - g->lo + 4095) >> 12;
		if (g->blk_lo == g->blk_hi || r->nblocks > UINT32_MAX ||
		    !(g->page_first = malloc((npages + 1) * sizeof(uint32_t))))
			continue;
		/* page p: the first block ending past the page's start (the
		 * blocks tile the segment: their ends are in order too) */
		size_t k = g->blk_lo;
		for (uint64_t p = 0; p <= npages; p++) {
			uint64_t at = g->lo + (p << 12);
			while (k + 1 < g->blk_hi && r->blocks[k].hi <= at)
				k++;
			g->page_first[p] = (uint32_t)k;
		}
	}
}

/* @ex is sorted by lo (the caller sorts); ranges may overlap. */
static bool excluded(const struct addr_range *ex, size_t n, uint64_t a)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (ex[mid].lo <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Ranges are small (task cells, futures): look back a little. */
	for (size_t i = lo, k = 0; i-- > 0 && k < 64; k++)
		if (a >= ex[i].lo && a < ex[i].hi)
			return true;
	return false;
}

struct scan {
	struct reach *r;
	const struct addr_range *ex;
	size_t nex;
	struct u64map targets; /* value -> index+1 */
	uint64_t *found_at;
	size_t left; /* targets not found yet */
};

static void mark(struct scan *sc, long bi)
{
	struct reach *r = sc->r;
	if (bi < 0 || r->marked[bi])
		return;
	r->marked[bi] = 1;
	if (r->nstack == r->capstack) {
		size_t cap = r->capstack ? r->capstack * 2 : 4096;
		size_t *st = realloc(r->stack, cap * sizeof(*st));
		if (!st)
			return;
		r->stack = st;
		r->capstack = cap;
	}
	r->stack[r->nstack++] = (size_t)bi;
}

static void scan_range(struct scan *sc, uint64_t lo, uint64_t hi)
{
	struct reach *r = sc->r;
	lo = (lo + 7) & ~(uint64_t)7;
	while (lo + 8 <= hi && sc->left) {
		const struct seg *g = find_seg(r, lo);
		if (!g) {
			lo += 8;
			continue;
		}
		uint64_t end = hi < g->hi ? hi : g->hi;
		for (uint64_t a = lo; a + 8 <= end; a += 8) {
			uint64_t w = word_at(g, a);
			if (w < 4096)
				continue;
			uint64_t ti;
			long bi = find_block(r, w);
			if (((bi >= 0 && r->has_target[bi]) || (bi < 0 && r->stray_targets)) &&
			    u64map_get(&sc->targets, w, &ti) && !excluded(sc->ex, sc->nex, a) &&
			    !sc->found_at[ti - 1]) {
				sc->found_at[ti - 1] = a;
				if (!--sc->left)
					return;
			}
			mark(sc, bi);
		}
		lo = end;
	}
}

/* Scan the marked blocks not scanned yet, until none is left or every
 * target is found. */
static void closure(struct scan *sc)
{
	struct reach *r = sc->r;
	while (r->nstack && sc->left) {
		const struct block *b = &r->blocks[r->stack[--r->nstack]];
		scan_range(sc, b->lo, b->hi);
	}
}

bool reach_find(struct tscope_session *s, const struct addr_range *roots,
		size_t nroots, reach_more_fn more, void *more_arg,
		const struct addr_range *exclude, size_t nexclude,
		const struct addr_range *opaque, size_t nopaque,
		const uint64_t *targets, size_t ntargets, uint64_t *found_at)
{
	struct tscope_target *t = s->target;
	size_t nseg = target_num_segments(t);
	if (!nseg)
		return false;
	struct reach r = {0};
	struct scan sc = {&r, exclude, nexclude, {0}, found_at, 0};
	bool ok = false;
	r.segs = calloc(nseg, sizeof(*r.segs));
	if (!r.segs)
		return false;
	for (size_t i = 0; i < nseg; i++) {
		uint64_t vaddr, len;
		uint32_t flags;
		const unsigned char *data;
		if (!target_segment(t, i, &vaddr, &len, &flags, &data) || !len)
			continue;
		struct seg *g = &r.segs[r.nsegs++];
		g->lo = vaddr;
		g->hi = vaddr + (len & ~(uint64_t)7);
		g->end = g->hi;
		g->data = data;
		g->heap = flags & PF_W;
		g->writable = flags & PF_W;
		/* File-backed mappings (.data, .bss of libraries) are not heap. */
		for (size_t m = 0; m < target_num_mappings(t) && g->heap; m++) {
			const struct tscope_mapping *mp = target_mapping(t, m);
			if (mp->start < g->hi && vaddr < mp->end)
				g->heap = false;
		}
	}
	qsort(r.segs, r.nsegs, sizeof(*r.segs), cmp_seg);
	/* Thread stacks are roots, not heap.  A stack mapping (a guard page
	 * right below it) that no live thread uses belongs to an exited thread
	 * (glibc caches them): only stale data, never followed. */
	size_t nth;
	struct tscope_thread *th = target_threads(t, &nth);
	for (size_t i = 0; i < r.nsegs; i++) {
		bool stack = false;
		for (size_t j = 0; j < nth; j++)
			if (th[j].sp >= r.segs[i].lo && th[j].sp < r.segs[i].hi)
				stack = true;
		bool guarded = i > 0 && !r.segs[i - 1].writable &&
			       r.segs[i - 1].lo + 4096 == r.segs[i].lo &&
			       r.segs[i - 1].hi - r.segs[i - 1].lo <= 4096;
		if (r.segs[i].heap && !stack && !guarded)
			tile(&r, i);
	}
	qsort(r.blocks, r.nblocks, sizeof(*r.blocks), cmp_block);
	index_blocks(&r);
	r.marked = calloc(r.nblocks ? r.nblocks : 1, 1);
	r.has_target = calloc(r.nblocks ? r.nblocks : 1, 1);
	if (!r.marked || !r.has_target)
		goto out;
	/* Objects whose live parts the caller gave as roots: the heap block
	 * that is just that object is never scanned whole (its dead bytes are
	 * stale).  Only a block that fits the object (allocator slack aside):
	 * a segment that did not tile is one big block and must be scanned. */
	for (size_t k = 0; k < nopaque; k++) {
		long bi = find_block(&r, opaque[k].lo);
		if (bi < 0)
			continue;
		const struct block *b = &r.blocks[bi];
		if (b->lo + 256 >= opaque[k].lo && b->hi <= opaque[k].hi + 256)
			r.marked[bi] = 1;
	}
	for (size_t i = 0; i < ntargets; i++) {
		found_at[i] = 0;
		uint64_t had;
		if (!u64map_get(&sc.targets, targets[i], &had))
			sc.left++; /* a target given twice is found once */
		u64map_put(&sc.targets, targets[i], i + 1);
		long bi = find_block(&r, targets[i]);
		if (bi >= 0)
			r.has_target[bi] = 1;
		else
			r.stray_targets = true;
	}
	/* Roots: stacks from sp (minus the red zone) up, the executable's
	 * writable data, and what the caller adds (the tasks themselves). */
	for (size_t j = 0; j < nth; j++) {
		const struct seg *g = find_seg(&r, th[j].sp);
		if (g)
			scan_range(&sc, th[j].sp > g->lo + 128 ? th[j].sp - 128 : g->lo, g->hi);
	}
	for (size_t k = 0; k < s->prog->nrw; k++)
		scan_range(&sc, s->prog->rw[k].vaddr + s->bias,
			   s->prog->rw[k].vaddr + s->bias + s->prog->rw[k].memsz);
	for (size_t k = 0; k < nroots; k++)
		scan_range(&sc, roots[k].lo, roots[k].hi);
	closure(&sc);
	if (sc.left && more) {
		size_t nextra = 0;
		const struct addr_range *extra = more(more_arg, &nextra);
		for (size_t k = 0; extra && k < nextra; k++)
			scan_range(&sc, extra[k].lo, extra[k].hi);
		closure(&sc);
	}
	/* A target given twice (two tasks on one channel) was recorded under
	 * its last index: every index gets the answer. */
	for (size_t i = 0; i < ntargets; i++) {
		uint64_t j;
		if (u64map_get(&sc.targets, targets[i], &j) && j - 1 != i)
			found_at[i] = found_at[j - 1];
	}
	ok = true;
out:
	u64map_free(&sc.targets);
	for (size_t i = 0; r.segs && i < r.nsegs; i++)
		free(r.segs[i].page_first);
	free(r.segs);
	free(r.blocks);
	free(r.marked);
	free(r.has_target);
	free(r.stack);
	return ok;
}

bool reach_find_wakers(struct tscope_session *s, uint64_t vtable,
		       const uint64_t *hdrs, size_t n, bool *found)
{
	struct tscope_target *t = s->target;
	size_t nseg = target_num_segments(t);
	if (!nseg)
		return false;
	struct u64map want;
	u64map_init(&want);
	for (size_t i = 0; i < n; i++) {
		found[i] = false;
		u64map_put(&want, hdrs[i], i + 1);
	}
	for (size_t k = 0; k < nseg; k++) {
		uint64_t vaddr, len;
		uint32_t flags;
		const unsigned char *data;
		if (!target_segment(t, k, &vaddr, &len, &flags, &data) || !len ||
		    !(flags & PF_W))
			continue;
		uint64_t prev = 0;
		for (uint64_t off = 0; off + 8 <= len; off += 8) {
			uint64_t w;
			memcpy(&w, data + off, 8);
			uint64_t idx;
			if (prev == vtable && u64map_get(&want, w, &idx))
				found[idx - 1] = true;
			if (w == vtable && off >= 8 && u64map_get(&want, prev, &idx))
				found[idx - 1] = true;
			prev = w;
		}
	}
	u64map_free(&want);
	return true;
}
