/* Typed navigation of target memory, driven by the DWARF type cache. */
#include <string.h>

#include "session/session.h"

struct tscope_error *type_size(struct tscope_session *s, uint64_t type,
			       uint64_t *ret)
{
	const struct ttype *t;
	struct tscope_error *err = type_strip(s->prog, type, &t);
	if (err)
		return err;
	if (!t->has_size)
		return tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
					   "type %s has no size",
					   t->name ? t->name : "?");
	*ret = t->size;
	return NULL;
}

struct tscope_error *val_member(struct tscope_session *s, struct tval v,
				const char *name, struct tval *ret)
{
	const struct ttype *t;
	struct tscope_error *err = type_strip(s->prog, v.type, &t);
	if (err)
		return err;
	const struct tmember *m = type_member(t, name);
	if (!m)
		return tscope_error_create(TSCOPE_ERROR_UNSUPPORTED,
					   "%s has no member '%s'",
					   t->name ? t->name : "type", name);
	ret->addr = v.addr + m->offset;
	ret->type = m->type;
	return NULL;
}

static struct tscope_error *find_impl(struct tscope_session *s, struct tval v,
				      const char *name, int depth, bool all_variants,
				      struct tval *ret);

struct tscope_error *val_find(struct tscope_session *s, struct tval v,
			      const char *name, int depth, struct tval *ret)
{
	return find_impl(s, v, name, depth, false, ret);
}

struct tscope_error *val_find_any_variant(struct tscope_session *s,
					  struct tval v, const char *name,
					  int depth, struct tval *ret)
{
	return find_impl(s, v, name, depth, true, ret);
}

static struct tscope_error *find_impl(struct tscope_session *s, struct tval v,
				      const char *name, int depth, bool all_variants,
				      struct tval *ret)
{
	struct tval queue[256];
	int level[256];
	size_t head = 0, tail = 0;
	queue[tail] = v;
	level[tail++] = 0;
	const char *root = NULL;
	while (head < tail) {
		struct tval cur = queue[head];
		int lv = level[head++];
		const struct ttype *t;
		struct tscope_error *err = type_strip(s->prog, cur.type, &t);
		if (err)
			return err;
		if (!root)
			root = t->name;
		if (t->tag != DW_TAG_structure_type && t->tag != DW_TAG_union_type)
			continue;
		const struct tmember *m = type_member(t, name);
		if (m) {
			ret->addr = cur.addr + m->offset;
			ret->type = m->type;
			return NULL;
		}
		if (lv >= depth)
			continue;
		for (size_t i = 0; i < t->nmembers && tail < ARRAY_SIZE(queue); i++) {
			queue[tail] = (struct tval){cur.addr + t->members[i].offset,
						    t->members[i].type};
			level[tail++] = lv + 1;
		}
		/* An enum with a single variant (tokio's time::Inner) has a
		 * fixed layout: look inside it too. */
		for (size_t i = 0; (t->nvariants == 1 || all_variants) &&
				   i < t->nvariants && tail < ARRAY_SIZE(queue); i++) {
			queue[tail] = (struct tval){cur.addr + t->variants[i].member.offset,
						    t->variants[i].member.type};
			level[tail++] = lv + 1;
		}
	}
	return tscope_error_create(TSCOPE_ERROR_UNSUPPORTED,
				   "no member '%s' within %d levels of %s", name,
				   depth, root ? root : "type");
}

struct tscope_error *val_uint(struct tscope_session *s, struct tval v,
			      uint64_t *ret)
{
	for (int i = 0; i < 8; i++) {
		const struct ttype *t;
		struct tscope_error *err = type_strip(s->prog, v.type, &t);
		if (err)
			return err;
		if ((t->tag == DW_TAG_structure_type || t->tag == DW_TAG_union_type) &&
		    t->nmembers >= 1 && !t->has_variants) {
			/* Newtypes: Id(NonZeroU64), AtomicU64{v: UnsafeCell}. */
			v.addr += t->members[0].offset;
			v.type = t->members[0].type;
			continue;
		}
		uint64_t size = t->size;
		if (!t->has_size || (size != 1 && size != 2 && size != 4 && size != 8))
			return tscope_error_create(
				TSCOPE_ERROR_UNSUPPORTED,
				"cannot read %s at 0x%llx as an integer",
				t->name ? t->name : "value",
				(unsigned long long)v.addr);
		uint64_t x = 0;
		err = tscope_target_read(s->target, v.addr, &x, size);
		if (err)
			return err;
		*ret = x;
		return NULL;
	}
	return tscope_error_create(TSCOPE_ERROR_UNSUPPORTED,
				   "integer wrapper nested too deep at 0x%llx",
				   (unsigned long long)v.addr);
}

struct tscope_error *val_variant(struct tscope_session *s, struct tval v,
				 const struct tmember **member_ret,
				 struct tval *ret)
{
	const struct ttype *t;
	struct tscope_error *err = type_strip(s->prog, v.type, &t);
	if (err)
		return err;
	if (!t->has_variants)
		return tscope_error_create(TSCOPE_ERROR_UNSUPPORTED,
					   "%s is not an enum",
					   t->name ? t->name : "type");
	const struct tvariant *chosen = NULL;
	if (t->discr.type) {
		uint64_t dsize;
		err = type_size(s, t->discr.type, &dsize);
		if (err)
			return err;
		uint64_t d = 0;
		if (dsize > 8)
			dsize = 8; /* u128 discriminants: low half decides */
		err = tscope_target_read(s->target, v.addr + t->discr.offset, &d,
					 dsize);
		if (err)
			return tscope_error_wrap(err, "reading the discriminant of %s",
						 t->name ? t->name : "enum");
		for (size_t i = 0; i < t->nvariants; i++)
			if (t->variants[i].has_value && t->variants[i].value == d)
				chosen = &t->variants[i];
		if (!chosen)
			for (size_t i = 0; i < t->nvariants; i++)
				if (!t->variants[i].has_value)
					chosen = &t->variants[i];
		if (!chosen)
			return tscope_error_create(
				TSCOPE_ERROR_BAD_FORMAT,
				"%s at 0x%llx has discriminant %llu, which no "
				"variant has (corrupt memory?)",
				t->name ? t->name : "enum",
				(unsigned long long)v.addr, (unsigned long long)d);
	} else if (t->nvariants == 1) {
		chosen = &t->variants[0];
	} else {
		return tscope_error_create(TSCOPE_ERROR_UNSUPPORTED,
					   "%s has no discriminant",
					   t->name ? t->name : "enum");
	}
	*member_ret = &chosen->member;
	ret->addr = v.addr + chosen->member.offset;
	ret->type = chosen->member.type;
	return NULL;
}

struct tscope_error *val_deref(struct tscope_session *s, struct tval v,
			       struct tval *ret)
{
	for (int i = 0; i < 8; i++) {
		const struct ttype *t;
		struct tscope_error *err = type_strip(s->prog, v.type, &t);
		if (err)
			return err;
		if (t->tag == DW_TAG_pointer_type ||
		    t->tag == DW_TAG_reference_type) {
			uint64_t p;
			err = tscope_target_read(s->target, v.addr, &p, 8);
			if (err)
				return err;
			if (!p)
				return tscope_error_create(
					TSCOPE_ERROR_FAULT,
					"null pointer at 0x%llx",
					(unsigned long long)v.addr);
			ret->addr = p;
			ret->type = t->target;
			return NULL;
		}
		if (t->tag == DW_TAG_structure_type && t->nmembers >= 1 &&
		    !t->has_variants) {
			/* NonNull{pointer}, Unique{pointer, _marker},
			 * Arc{ptr, phantom, alloc}: the pointer is first. */
			v.addr += t->members[0].offset;
			v.type = t->members[0].type;
			continue;
		}
		if (t->has_variants) {
			/* Option<NonNull<T>> (list links): None is null. */
			const struct tmember *m;
			struct tval pv;
			if ((err = val_variant(s, v, &m, &pv)))
				return err;
			if (!m->name || strcmp(m->name, "Some") != 0)
				return tscope_error_create(TSCOPE_ERROR_FAULT,
							   "null pointer (None) at 0x%llx",
							   (unsigned long long)v.addr);
			if ((err = val_member(s, pv, "__0", &v)))
				return err;
			continue;
		}
		return tscope_error_create(TSCOPE_ERROR_UNSUPPORTED,
					   "%s is not a pointer",
					   t->name ? t->name : "type");
	}
	return tscope_error_create(TSCOPE_ERROR_UNSUPPORTED,
				   "pointer wrapper nested too deep");
}

struct tscope_error *val_elements(struct tscope_session *s, struct tval v,
				  uint64_t *data_ret, uint64_t *len_ret,
				  uint64_t *elem_type_ret)
{
	const struct ttype *t;
	struct tscope_error *err = type_strip(s->prog, v.type, &t);
	if (err)
		return err;
	struct tval m, p;
	if (t->name && strncmp(t->name, "alloc::vec::Vec<", 16) == 0) {
		/* Vec<T> { buf: RawVec { inner: RawVecInner { ptr, cap } }, len } */
		const struct tparam *T = type_tparam(t, "T");
		if (!T)
			return tscope_error_create(TSCOPE_ERROR_UNSUPPORTED,
						   "%s has no parameter T", t->name);
		if ((err = val_member(s, v, "len", &m)) || (err = val_uint(s, m, len_ret)))
			return err;
		if ((err = val_member(s, v, "buf", &m)) ||
		    (err = val_find(s, m, "ptr", 3, &p)) ||
		    (err = val_uint(s, p, data_ret)))
			return err;
		*elem_type_ret = T->type;
		return NULL;
	}
	const struct tmember *dp = type_member(t, "data_ptr");
	const struct tmember *ln = type_member(t, "length");
	if (dp && ln) {
		/* &[T], Box<[T]>: a fat pointer { data_ptr, length } */
		const struct ttype *pt;
		if ((err = type_strip(s->prog, dp->type, &pt)))
			return err;
		if ((err = tscope_target_read(s->target, v.addr + dp->offset, data_ret, 8)) ||
		    (err = tscope_target_read(s->target, v.addr + ln->offset, len_ret, 8)))
			return err;
		*elem_type_ret = pt->target;
		return NULL;
	}
	return tscope_error_create(TSCOPE_ERROR_UNSUPPORTED, "%s is not a sequence",
				   t->name ? t->name : "type");
}

/* Descend single-purpose wrappers (UnsafeCell, RefCell value, Cell) to the
 * first type with a variant part. */
struct tscope_error *val_enum(struct tscope_session *s, struct tval v,
				     struct tval *ret)
{
	for (int i = 0; i < 6; i++) {
		const struct ttype *t;
		struct tscope_error *err = type_strip(s->prog, v.type, &t);
		if (err)
			return err;
		if (t->has_variants) {
			*ret = v;
			return NULL;
		}
		const struct tmember *m = type_member(t, "value");
		if (!m && t->nmembers >= 1)
			m = &t->members[t->nmembers - 1];
		if (!m)
			break;
		v.addr += m->offset;
		v.type = m->type;
	}
	return tscope_error_create(TSCOPE_ERROR_UNSUPPORTED,
				   "expected an enum behind a wrapper type");
}

bool read_instant_ns(struct tscope_session *s, struct tval v, uint64_t *ret)
{
	struct tval sec, nsec;
	uint64_t a, b;
	struct tscope_error *err = val_find(s, v, "tv_sec", 4, &sec);
	if (!err)
		err = val_find(s, v, "tv_nsec", 4, &nsec);
	if (!err)
		err = val_uint(s, sec, &a);
	if (!err)
		err = val_uint(s, nsec, &b);
	if (err) {
		tscope_error_destroy(err);
		return false;
	}
	*ret = a * 1000000000ull + b;
	return true;
}
