/*
 * Lazy type decoding: one DIE and its direct children become a struct
 * ttype the first time anything asks, then stay cached by DIE offset.
 * Handles Rust's layout vocabulary: members, variant parts (enums and async
 * state machines: discriminant member, variants with or without a value,
 * each variant's member carrying decl_file/decl_line), template parameters.
 */
#include <stdlib.h>
#include <string.h>

#include "program/program.h"

static bool attr_udata(Dwarf_Die die, Dwarf_Half at, uint64_t *ret)
{
	Dwarf_Attribute a;
	if (dwarf_attr(die, at, &a, NULL) != DW_DLV_OK)
		return false;
	Dwarf_Unsigned u;
	Dwarf_Signed s;
	bool ok = false;
	if (dwarf_formudata(a, &u, NULL) == DW_DLV_OK) {
		*ret = u;
		ok = true;
	} else if (dwarf_formsdata(a, &s, NULL) == DW_DLV_OK) {
		*ret = (uint64_t)s;
		ok = true;
	}
	dwarf_dealloc_attribute(a);
	return ok;
}

/* A reference, as an offset of the same file as the referring DIE (@tag:
 * its DIE_DWP bit). */
static bool attr_ref(Dwarf_Die die, Dwarf_Half at, uint64_t tag, uint64_t *ret)
{
	Dwarf_Attribute a;
	if (dwarf_attr(die, at, &a, NULL) != DW_DLV_OK)
		return false;
	Dwarf_Off off;
	bool ok = dwarf_global_formref(a, &off, NULL) == DW_DLV_OK;
	if (ok)
		*ret = off | tag;
	dwarf_dealloc_attribute(a);
	return ok;
}

static bool attr_flag(Dwarf_Die die, Dwarf_Half at)
{
	Dwarf_Bool has = 0;
	return dwarf_hasattr(die, at, &has, NULL) == DW_DLV_OK && has;
}

static const char *die_name(struct tscope_program *prog, Dwarf_Die die)
{
	char *name;
	if (dwarf_diename(die, &name, NULL) != DW_DLV_OK)
		return NULL;
	return strmap_intern(&prog->names, name, strlen(name));
}

const char *type_name(struct tscope_program *prog, uint64_t off)
{
	uint64_t v;
	if (u64map_get(&prog->name_of, off + 1, &v))
		return (const char *)(uintptr_t)v;
	const struct ttype *t;
	struct tscope_error *err = type_get(prog, off, &t);
	if (err) {
		tscope_error_destroy(err);
		return NULL;
	}
	return t->name;
}

static bool decode_member(struct tscope_program *prog, Dwarf_Die die,
			  uint64_t tag, struct tmember *m)
{
	memset(m, 0, sizeof(*m));
	m->name = die_name(prog, die);
	attr_udata(die, DW_AT_data_member_location, &m->offset);
	attr_ref(die, DW_AT_type, tag, &m->type);
	uint64_t v;
	if (attr_udata(die, DW_AT_decl_file, &v))
		m->decl_file = (uint32_t)v;
	if (attr_udata(die, DW_AT_decl_line, &v))
		m->decl_line = (uint32_t)v;
	m->artificial = attr_flag(die, DW_AT_artificial);
	return true;
}

#define PUSH(arr, n, item)                                                    \
	do {                                                                  \
		void *p_ = realloc((arr), ((n) + 1) * sizeof(*(arr)));        \
		if (!p_)                                                      \
			goto nomem;                                           \
		(arr) = p_;                                                   \
		(arr)[(n)++] = (item);                                        \
	} while (0)

static struct tscope_error *decode_variant_part(struct tscope_program *prog,
						Dwarf_Die vp, struct ttype *t)
{
	uint64_t ftag = t->off & DIE_DWP, discr_ref = 0;
	attr_ref(vp, DW_AT_discr, 0, &discr_ref); /* raw: compared with raw */
	t->has_variants = true;
	Dwarf_Die c;
	if (dwarf_child(vp, &c, NULL) != DW_DLV_OK)
		return NULL;
	for (int guard = 0; guard < 100000; guard++) {
		Dwarf_Half tag;
		Dwarf_Off off;
		dwarf_tag(c, &tag, NULL);
		dwarf_dieoffset(c, &off, NULL);
		if (tag == DW_TAG_member && off == discr_ref) {
			decode_member(prog, c, ftag, &t->discr);
		} else if (tag == DW_TAG_variant) {
			struct tvariant v = {0};
			v.has_value = attr_udata(c, DW_AT_discr_value, &v.value);
			Dwarf_Die vm;
			if (dwarf_child(c, &vm, NULL) == DW_DLV_OK) {
				decode_member(prog, vm, ftag, &v.member);
				dwarf_dealloc_die(vm);
			}
			PUSH(t->variants, t->nvariants, v);
		}
		Dwarf_Die s;
		int r = dwarf_siblingof_b(die_dbg(prog, t->off), c, true, &s, NULL);
		dwarf_dealloc_die(c);
		if (r != DW_DLV_OK)
			break;
		c = s;
	}
	return NULL;
nomem:
	return &tscope_error_nomem;
}

struct tscope_error *type_get(struct tscope_program *prog, uint64_t off,
			      const struct ttype **ret)
{
	uint64_t v;
	if (u64map_get(&prog->type_cache, off + 1, &v)) {
		*ret = (const struct ttype *)(uintptr_t)v;
		return NULL;
	}
	struct tscope_error *err = program_ensure_index(prog);
	if (err)
		return err;
	Dwarf_Die die;
	if (dwarf_offdie_b(die_dbg(prog, off), die_off(off), true, &die, NULL) !=
	    DW_DLV_OK)
		return tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
					   "no DWARF DIE at offset 0x%llx",
					   (unsigned long long)off);
	struct ttype *t = calloc(1, sizeof(*t));
	if (!t) {
		dwarf_dealloc_die(die);
		return &tscope_error_nomem;
	}
	t->off = off;
	Dwarf_Half tag;
	dwarf_tag(die, &tag, NULL);
	t->tag = tag;
	if (u64map_get(&prog->name_of, off + 1, &v))
		t->name = (const char *)(uintptr_t)v;
	else
		t->name = die_name(prog, die);
	t->has_size = attr_udata(die, DW_AT_byte_size, &t->size);
	uint64_t ftag = off & DIE_DWP;
	attr_ref(die, DW_AT_type, ftag, &t->target);
	attr_ref(die, DW_AT_containing_type, ftag, &t->containing);
	Dwarf_Off cu_off = 0;
	dwarf_CU_dieoffset_given_die(die, &cu_off, NULL);
	t->cu_off = cu_off | ftag;
	if (tag == DW_TAG_pointer_type && !t->has_size) {
		t->size = 8;
		t->has_size = true;
	}
	Dwarf_Die c;
	if (dwarf_child(die, &c, NULL) == DW_DLV_OK) {
		for (int guard = 0; guard < 100000; guard++) {
			Dwarf_Half ctag;
			dwarf_tag(c, &ctag, NULL);
			if (ctag == DW_TAG_member) {
				struct tmember m;
				decode_member(prog, c, ftag, &m);
				PUSH(t->members, t->nmembers, m);
			} else if (ctag == DW_TAG_variant_part) {
				err = decode_variant_part(prog, c, t);
				if (err) {
					dwarf_dealloc_die(c);
					break;
				}
			} else if (ctag == DW_TAG_template_type_parameter) {
				struct tparam p = {die_name(prog, c), 0};
				attr_ref(c, DW_AT_type, ftag, &p.type);
				PUSH(t->tparams, t->ntparams, p);
			} else if (ctag == DW_TAG_subrange_type) {
				uint64_t n;
				if (attr_udata(c, DW_AT_count, &n))
					t->count = n;
				else if (attr_udata(c, DW_AT_upper_bound, &n))
					t->count = n + 1;
			}
			Dwarf_Die s;
			int r = dwarf_siblingof_b(die_dbg(prog, off), c, true, &s, NULL);
			dwarf_dealloc_die(c);
			if (r != DW_DLV_OK)
				break;
			c = s;
		}
	}
	dwarf_dealloc_die(die);
	if (err)
		goto fail;
	if (!u64map_put(&prog->type_cache, off + 1, (uint64_t)(uintptr_t)t)) {
		err = &tscope_error_nomem;
		goto fail;
	}
	*ret = t;
	return NULL;
nomem:
	dwarf_dealloc_die(c);
	dwarf_dealloc_die(die);
	err = &tscope_error_nomem;
fail:
	free(t->members);
	free(t->variants);
	free(t->tparams);
	free(t);
	return err;
}

struct tscope_error *type_strip(struct tscope_program *prog, uint64_t off,
				const struct ttype **ret)
{
	for (int i = 0; i < 16; i++) {
		const struct ttype *t;
		struct tscope_error *err = type_get(prog, off, &t);
		if (err)
			return err;
		if ((t->tag == DW_TAG_typedef || t->tag == DW_TAG_const_type ||
		     t->tag == DW_TAG_volatile_type) && t->target) {
			off = t->target;
			continue;
		}
		*ret = t;
		return NULL;
	}
	return tscope_error_create(TSCOPE_ERROR_BAD_FORMAT,
				   "typedef chain too long at DIE 0x%llx",
				   (unsigned long long)off);
}

const struct tmember *type_member(const struct ttype *t, const char *name)
{
	for (size_t i = 0; i < t->nmembers; i++)
		if (t->members[i].name && strcmp(t->members[i].name, name) == 0)
			return &t->members[i];
	for (size_t i = 0; i < t->nvariants; i++)
		if (t->variants[i].member.name &&
		    strcmp(t->variants[i].member.name, name) == 0)
			return &t->variants[i].member;
	return NULL;
}

const struct tparam *type_tparam(const struct ttype *t, const char *name)
{
	for (size_t i = 0; i < t->ntparams; i++)
		if (t->tparams[i].name && strcmp(t->tparams[i].name, name) == 0)
			return &t->tparams[i];
	return NULL;
}

static struct cu_files *cu_files_of(struct tscope_program *prog,
				    const struct ttype *t)
{
	uint64_t v;
	if (u64map_get(&prog->cu_files, t->cu_off + 1, &v))
		return (struct cu_files *)(uintptr_t)v;
	struct cu_files *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	Dwarf_Die cu;
	f->dbg = die_dbg(prog, t->cu_off);
	if (dwarf_offdie_b(f->dbg, die_off(t->cu_off), true, &cu, NULL) == DW_DLV_OK) {
		Dwarf_Half ver = 4, offsz;
		dwarf_get_version_of_die(cu, &ver, &offsz);
		f->version = ver;
		/* A split unit (.dwp) has no line table of its own: its file
		 * indexes are those of its skeleton in the executable. */
		uint64_t id, skel;
		Dwarf_Die sk;
		if ((t->cu_off & DIE_DWP) && attr_udata(cu, DW_AT_GNU_dwo_id, &id) &&
		    u64map_get(&prog->skeletons, id, &skel) &&
		    dwarf_offdie_b(prog->dbg, skel - 1, true, &sk, NULL) == DW_DLV_OK) {
			dwarf_dealloc_die(cu);
			cu = sk;
			f->dbg = prog->dbg;
		}
		if (dwarf_srcfiles(cu, &f->files, &f->count, NULL) != DW_DLV_OK) {
			f->files = NULL;
			f->count = 0;
		}
		dwarf_dealloc_die(cu);
	}
	u64map_put(&prog->cu_files, t->cu_off + 1, (uint64_t)(uintptr_t)f);
	return f;
}

const char *type_decl_file(struct tscope_program *prog, const struct ttype *t,
			   uint32_t idx)
{
	struct cu_files *f = cu_files_of(prog, t);
	if (!f)
		return "";
	/* DWARF 5 file indexes are 0-based, earlier ones 1-based. */
	Dwarf_Signed i = f->version >= 5 ? (Dwarf_Signed)idx : (Dwarf_Signed)idx - 1;
	if (i < 0 || i >= f->count)
		return "";
	return f->files[i];
}
