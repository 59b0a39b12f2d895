/* The C half of segv_ffi: a tiny "ledger" library with the bug of a real
 * C API -- ledger_lookup() returns NULL for an unknown SKU, and
 * ledger_post() writes through whatever it is given.  Built by build.rs with
 * the cc crate (the profile's opt-level and -g). */
#include <stddef.h>

struct ledger_entry {
    long sku;
    long last_posted; /* ledger_post's first store: the fault address is its offset */
    long cents;
};

/* The address ledger_post faults on when given NULL (for the truth). */
const size_t ledger_fault_offset = offsetof(struct ledger_entry, last_posted);

static struct ledger_entry entries[4] = {{1, 0, 0}, {2, 0, 0}, {3, 0, 0}, {5, 0, 0}};

/* The entry of @sku, or NULL if the ledger has none. */
struct ledger_entry *ledger_lookup(long sku)
{
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++)
        if (entries[i].sku == sku)
            return &entries[i];
    return NULL;
}

/* Add @cents to @e (no NULL check: checking is the caller's job). */
void ledger_post(struct ledger_entry *e, long cents)
{
    e->last_posted = cents;
    e->cents += cents;
}
