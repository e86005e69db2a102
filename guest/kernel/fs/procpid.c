/*
 * /proc/PID: one directory per process (zombies too, as Linux), and
 * /proc/PID/task/TID for its threads, each read from that task, not the caller:
 *
 *   stat, status       Linux's formats (0 where this kernel keeps nothing)
 *   cmdline, environ   the strings on the task's own stack
 *   comm, maps, exe    its name, regions and program
 *
 * /proc and each task/ are brought up to date before every lookup and listing
 * in them (procpid_refresh): a directory for each task that has none, and the
 * directories of tasks that are gone removed, so a reaped PID is ENOENT.  A
 * directory still open or a working directory when its task goes stays, empty;
 * files opened before keep their text (made at open).
 */
#include "fs/genfile.h"
#include "fs/vfs.h"
#include "kernel.h"
#include "layout.h"
#include "mm/mm.h"
#include "proc/task.h"
#include "proc/thread.h"

static int dir_pid(const struct inode *ino)
{
    return (int)(uintptr_t)ino->priv;
}

/* The task with this ID, zombies included; NULL when it is gone. */
static struct task *task_of(const struct inode *ino)
{
    int pid = dir_pid(ino);
    for (struct task *t = all_tasks; t; t = t->all_next)
        if (t->pid == pid)
            return t;
    return 0;
}

static size_t pid_name(char name[12], int v)
{
    char tmp[12];
    size_t n = 0, i = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        name[i++] = tmp[--n];
    name[i] = 0;
    return i;
}

static int name_is_pid(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return len > 0;
}

static int threads_of(const struct task *t)
{
    int n = 0;
    for (struct task *u = all_tasks; u; u = u->all_next)
        n += u->tgid == t->tgid;
    return n;
}

static char state_letter(const struct task *t)
{
    return t->state == TASK_ZOMBIE ? 'Z' : t->state == TASK_SLEEPING ? 'S' : 'R';
}

/* ---- links ------------------------------------------------------------------------- */

static long copy_link(char *buf, size_t size, const char *s)
{
    size_t n = strlen(s);
    if (n >= size)
        return -ENAMETOOLONG;
    memcpy(buf, s, n + 1);
    return (long)n;
}

static long self_link(struct inode *ino, char *buf, size_t size)
{
    (void)ino;
    char pid[12];
    pid_name(pid, current->tgid);
    return copy_link(buf, size, pid);
}

static long thread_self_link(struct inode *ino, char *buf, size_t size)
{
    (void)ino;
    char path[32];
    size_t n = pid_name(path, current->tgid);
    memcpy(path + n, "/task/", 6);
    pid_name(path + n + 6, current->pid);
    return copy_link(buf, size, path);
}

static long exe_link(struct inode *ino, char *buf, size_t size)
{
    struct task *t = task_of(ino);
    if (!t)
        return -ESRCH;
    return t->exe && t->exe_path ? copy_link(buf, size, t->exe_path) : -ENOENT;   /* zombie: none */
}

/* ---- files ---------------------------------------------------------------------------- */

static void map_line(struct genbuf *b, const struct task *t, const struct vma *v)
{
    char perms[5] = {
        v->prot & PROT_READ ? 'r' : '-', v->prot & PROT_WRITE ? 'w' : '-',
        v->prot & PROT_EXEC ? 'x' : '-', v->flags & VMA_SHARED ? 's' : 'p', ' ',
    };
    gen_hex(b, v->start, 8);
    gen_puts(b, "-");
    gen_hex(b, v->end, 8);
    gen_puts(b, " ");
    gen_write(b, perms, 5);
    gen_hex(b, v->inode ? v->offset : 0, 8);
    gen_puts(b, v->inode ? " 00:01 " : " 00:00 ");
    gen_dec(b, v->inode ? v->inode->ino : 0, 0);
    const char *name = v->flags & VMA_HEAP ? "[heap]" : v->flags & VMA_STACK ? "[stack]" :
                       v->flags & VMA_WINDOW ? "[copy window]" :
                       v->inode && v->inode == t->exe ? t->exe_path : 0;
    if (name) {
        gen_pad(b, 73);                 /* Linux pads the path to this column */
        gen_puts(b, name);
    }
    gen_puts(b, "\n");
}

static long gen_maps(struct inode *ino, struct genbuf *b)
{
    struct task *t = task_of(ino);
    if (!t)
        return -ESRCH;
    if (t->state != TASK_ZOMBIE)        /* a zombie's regions are gone: empty, as Linux */
        for (struct vma *v = t->mm->vmas; v; v = v->next)
            map_line(b, t, v);
    return 0;
}

/* [start, end) of t's memory (its argv or envp strings): the caller's own
 * through user_ok (faulting in), another's through its page tables. */
static long gen_task_range(struct genbuf *b, struct task *t, uint64_t start, uint64_t end)
{
    if (t->state == TASK_ZOMBIE || end <= start || start < USER_MIN || end > USER_END)
        return 0;
    if (t->mm == current->mm) {
        if (user_ok(start, end - start, 0))
            gen_write(b, (const char *)start, end - start);
        return 0;
    }
    while (start < end) {
        uint64_t *pte = pte_lookup(t->mm, start, 0);
        if (!pte || !(*pte & PTE_P))
            break;                      /* not there: Linux stops at what it can read too */
        uint64_t k = MIN(end - start, PAGE_SIZE - start % PAGE_SIZE);
        gen_write(b, (const char *)phys_to_virt(*pte & PTE_ADDR_MASK) + start % PAGE_SIZE, k);
        start += k;
    }
    return 0;
}

static long gen_cmdline(struct inode *ino, struct genbuf *b)
{
    struct task *t = task_of(ino);
    return t ? gen_task_range(b, t, t->arg_start, t->arg_end) : -ESRCH;
}

static long gen_environ(struct inode *ino, struct genbuf *b)
{
    struct task *t = task_of(ino);
    return t ? gen_task_range(b, t, t->env_start, t->env_end) : -ESRCH;
}

static long gen_comm(struct inode *ino, struct genbuf *b)
{
    struct task *t = task_of(ino);
    if (!t)
        return -ESRCH;
    gen_puts(b, t->comm);
    gen_puts(b, "\n");
    return 0;
}

static void numbers(struct genbuf *b, const int64_t *v, int n)
{
    for (int i = 0; i < n; i++) {
        gen_puts(b, " ");
        if (v[i] < 0) {
            gen_puts(b, "-");
            gen_dec(b, (uint64_t)-v[i], 0);
        } else {
            gen_dec(b, (uint64_t)v[i], 0);
        }
    }
}

static uint64_t handlers_set_to(const struct task *t, uint64_t handler, int equal)
{
    uint64_t mask = 0;
    for (int sig = 1; sig <= NSIG; sig++)
        if ((t->sighand->action[sig].handler == handler) == equal)
            mask |= 1ull << (sig - 1);
    return mask;
}

/* Linux's 52 fields (fs/proc/array.c, do_task_stat); times, faults and
 * scheduling figures this kernel does not keep are 0. */
static long gen_stat(struct inode *ino, struct genbuf *b)
{
    struct task *t = task_of(ino);
    if (!t)
        return -ESRCH;
    struct task *leader = thread_leader(t);
    int zombie = t->state == TASK_ZOMBIE;
    uint64_t vsize = 0;
    if (!zombie)
        for (struct vma *v = t->mm->vmas; v; v = v->next)
            vsize += v->end - v->start;
    gen_dec(b, (uint64_t)t->pid, 0);
    gen_puts(b, " (");
    gen_puts(b, t->comm);
    gen_puts(b, ") ");
    char state[2] = { state_letter(t), 0 };
    gen_puts(b, state);
    uint64_t ignored = handlers_set_to(t, SIG_IGN, 1);
    uint64_t caught = handlers_set_to(t, SIG_DFL, 0) & ~ignored;
    int64_t f[] = {
        leader->ppid, t->pgid, t->sid, 0 /* tty_nr */, -1 /* tpgid */, 0 /* flags */,
        0, 0, 0, 0, 0, 0, 0, 0 /* faults, times */, 20 /* priority */, 0 /* nice */,
        threads_of(t), 0 /* itrealvalue */, 0 /* starttime */, (int64_t)vsize, 0 /* rss */,
    };
    int64_t g[] = {
        0, 0, 0, 0, 0 /* code, stack, esp, eip */,
        (int64_t)t->pending, (int64_t)t->blocked, (int64_t)ignored, (int64_t)caught,
        0, 0, 0 /* wchan, nswap, cnswap */, t->exit_signal, 0 /* processor */, 0, 0 /* rt, policy */,
        0, 0, 0, 0, 0 /* blkio, guest times, data */, zombie ? 0 : (int64_t)t->mm->brk_start,
        (int64_t)t->arg_start, (int64_t)t->arg_end, (int64_t)t->env_start, (int64_t)t->env_end,
        zombie ? t->exit_status : 0,
    };
    numbers(b, f, sizeof f / sizeof f[0]);
    gen_puts(b, " ");
    gen_dec(b, RLIM_INFINITY, 0);       /* rsslim */
    numbers(b, g, sizeof g / sizeof g[0]);
    gen_puts(b, "\n");
    return 0;
}

static void status_line(struct genbuf *b, const char *name, int64_t v)
{
    gen_puts(b, name);
    gen_puts(b, ":\t");
    if (v < 0) {
        gen_puts(b, "-");
        v = -v;
    }
    gen_dec(b, (uint64_t)v, 0);
    gen_puts(b, "\n");
}

static void mask_line(struct genbuf *b, const char *name, uint64_t v)
{
    gen_puts(b, name);
    gen_puts(b, ":\t");
    gen_hex(b, v, 16);
    gen_puts(b, "\n");
}

static long gen_status(struct inode *ino, struct genbuf *b)
{
    static const char *const states[] = { "R (running)", "S (sleeping)", "Z (zombie)" };
    struct task *t = task_of(ino);
    if (!t)
        return -ESRCH;
    gen_puts(b, "Name:\t");
    gen_puts(b, t->comm);
    gen_puts(b, "\nUmask:\t0");
    gen_dec(b, t->umask >> 6 & 7, 0);
    gen_dec(b, t->umask >> 3 & 7, 0);
    gen_dec(b, t->umask & 7, 0);
    gen_puts(b, "\nState:\t");
    gen_puts(b, states[state_letter(t) == 'Z' ? 2 : state_letter(t) == 'S' ? 1 : 0]);
    gen_puts(b, "\n");
    status_line(b, "Tgid", t->tgid);
    status_line(b, "Ngid", 0);
    status_line(b, "Pid", t->pid);
    status_line(b, "PPid", thread_leader(t)->ppid);
    status_line(b, "TracerPid", 0);
    gen_puts(b, "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n");    /* one user: root */
    status_line(b, "Threads", threads_of(t));
    uint64_t ignored = handlers_set_to(t, SIG_IGN, 1);
    mask_line(b, "SigPnd", t->pending);
    mask_line(b, "ShdPnd", 0);
    mask_line(b, "SigBlk", t->blocked);
    mask_line(b, "SigIgn", ignored);
    mask_line(b, "SigCgt", handlers_set_to(t, SIG_DFL, 0) & ~ignored);
    return 0;
}

/* ---- directories ------------------------------------------------------------------------ */

static const struct gen_ops stat_ops = GEN_OPS(gen_stat), status_ops = GEN_OPS(gen_status),
    maps_ops = GEN_OPS(gen_maps), cmdline_ops = GEN_OPS(gen_cmdline),
    environ_ops = GEN_OPS(gen_environ), comm_ops = GEN_OPS(gen_comm);
static const struct inode_ops exe_ops = { .readlink = exe_link };

static void add_file(struct inode *dir, const char *name, uint32_t mode, const struct gen_ops *ops)
{
    gen_file_static(dir, name, mode, ops)->priv = dir->priv;
}

static void tid_fill(struct inode *dir)
{
    add_file(dir, "stat", 0444, &stat_ops);
    add_file(dir, "status", 0444, &status_ops);
    add_file(dir, "maps", 0444, &maps_ops);
    add_file(dir, "cmdline", 0444, &cmdline_ops);
    add_file(dir, "environ", 0400, &environ_ops);
    add_file(dir, "comm", 0644, &comm_ops);
    struct inode *exe = vfs_mknod_kernel(dir, "exe", S_IFLNK | 0777, 0);
    exe->ops = &exe_ops;
    exe->priv = dir->priv;
}

static void task_refresh(struct inode *dir);
static const struct inode_ops tid_dir_ops = { .fill = tid_fill };
static const struct inode_ops task_dir_ops = { .refresh = task_refresh };

static void pid_fill(struct inode *dir)
{
    tid_fill(dir);
    struct inode *task = vfs_mkdir_kernel(dir, "task", 0555);
    task->ops = &task_dir_ops;
    task->priv = dir->priv;
}

static const struct inode_ops pid_dir_ops = { .fill = pid_fill };

/* d's directory and everything below it leave the tree. */
static void remove_tree(struct dentry *d)
{
    struct inode *ino = d->inode;
    if (S_ISDIR(ino->mode))
        while (ino->dir.first)
            remove_tree(ino->dir.first);
    dentry_remove(d);
}

/* dir's numeric entries become one directory per task `listed` accepts:
 * one pass over the tasks (each found by the name hash, marked seen), one
 * over the entries (those not seen are gone).  -1 when out of memory. */
static int sync_dir(struct inode *dir, int (*listed)(const struct task *t, int tgid), int tgid,
                     const struct inode_ops *child_ops)
{
    int r = 0;
    for (struct task *t = all_tasks; t && r == 0; t = t->all_next) {
        char name[12];
        if (!listed(t, tgid))
            continue;
        size_t n = pid_name(name, t->pid);
        struct dentry *d = dentry_lookup(dir, name, n);
        if (d) {
            d->inode->flags |= INODE_SEEN;
            continue;
        }
        struct inode *ino = inode_new(S_IFDIR | 0555);
        if (!ino) {
            r = -1;                     /* out of memory: the listing is short */
            break;
        }
        ino->ops = child_ops;
        ino->priv = (void *)(uintptr_t)t->pid;
        ino->flags |= INODE_SEEN;
        if (dentry_add(dir, name, n, ino) < 0) {
            inode_get(ino);
            inode_put(ino);             /* frees it */
            r = -1;
        }
    }
    for (struct dentry *d = dir->dir.first, *next; d; d = next) {
        next = d->next;
        if (!name_is_pid(d->name, d->len))
            continue;
        if (d->inode->flags & INODE_SEEN)
            d->inode->flags &= ~INODE_SEEN;
        else if (r == 0)                /* cut short: unvisited tasks may be live */
            remove_tree(d);
    }
    return r;
}

static int is_process(const struct task *t, int tgid)
{
    (void)tgid;
    return t->pid == t->tgid;
}

static int is_thread_of(const struct task *t, int tgid)
{
    return t->tgid == tgid;
}

static void task_refresh(struct inode *dir)
{
    (void)sync_dir(dir, is_thread_of, dir_pid(dir), &tid_dir_ops);
}

/* Every lookup in /proc comes here: the walk only when the set of tasks may
 * have changed (a task added moves last_pid on, one gone lowers nr_tasks),
 * as ring 0 is slow on nested KVM and LTP polls /proc/PID/stat of 100 children. */
void procpid_refresh(struct inode *proc)
{
    static int seen_last_pid = -1, seen_nr_tasks = -1;
    if (last_pid == seen_last_pid && nr_tasks == seen_nr_tasks)
        return;
    int ok = sync_dir(proc, is_process, 0, &pid_dir_ops) == 0;
    seen_last_pid = ok ? last_pid : -1;     /* short: again next time */
    seen_nr_tasks = nr_tasks;
}

void procpid_fill(struct inode *proc)
{
    gen_symlink(proc, "self", self_link);
    gen_symlink(proc, "thread-self", thread_self_link);
}
