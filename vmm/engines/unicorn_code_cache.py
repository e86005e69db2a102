"""Host writes into guest RAM, and the translated code they make stale.

unicorn notices the guest's own stores into code, not the host's: a loader, a virtio device's
DMA or an interrupt frame written by the VMM leaves the old translation running.

In RAM the range is dropped by physical address, with the translator's own
tb_invalidate_phys_range (exported by libunicorn; QEMU keys translated blocks by RAM offset,
and guest RAM is the first RAM block unicorn allocates, at offset 0, so its offsets are its
physical addresses). A page that holds no translated code costs one lookup. This matters:
Linux's stacks are not identity-mapped, and every exception frame the VMM pushes used to
flush all translated code, thousands of times in a boot.

Elsewhere (firmware ROM) it falls back to ctl_remove_cache(), which takes a *virtual* address,
translated as a code fetch through the guest's page tables with QEMU's fault path: a miss is
swallowed but leaves CR2, error_code and old_exception changed. So such a range is dropped
precisely only where our own page walk shows linear == physical, and those fields are put back
if it faulted anyway; otherwise all translated code is flushed before the guest runs on.
Never from inside a translated block (an I/O or MMIO callback): between runs or from an
exception hook.

Threads: GuestMemory calls on_host_write() from whichever thread wrote (the vCPU thread in a
device callback, or a device's own thread completing late). While the guest runs, or from
another thread, nothing may touch unicorn's state: the range is queued, the stop switch thrown,
and the run loop calls catch_up() before the guest continues.
"""
import threading

from ..arch.x86.paging import PAGE_SIZE, Paging, access_error, walk
from .unicorn_binding import tb_invalidate_phys_range
from .unicorn_layout import HF_CPL_MASK

MAX_PENDING_RANGES = 64     # host writes remembered during a run before flushing all code


class CodeCache:
    def __init__(self, uc, memory, hs, switch):
        self._uc = uc
        self._memory = memory
        self._hs = hs
        self._switch = switch
        self.flush_pending = False          # flush all translated code before the next run
        self.running = False                # the guest runs (set by the run loop)
        self.vcpu_thread = None             # the thread in run(): only it may touch unicorn
        self._pending = []                  # host writes made while the guest ran
        self._lock = threading.Lock()       # device threads append, the vCPU thread takes
        self._ram_end = _ram_at_offset_zero(memory)
        self._invalidate_physical = tb_invalidate_phys_range()

    def on_host_write(self, gpa: int, length: int) -> None:
        """GuestMemory listener (any thread): the host changed [gpa, gpa+length)."""
        if self._uc is None or length <= 0 or self.flush_pending:
            return
        other_thread = self.vcpu_thread is not None and threading.get_ident() != self.vcpu_thread
        if self.running or other_thread:
            with self._lock:
                if len(self._pending) < MAX_PENDING_RANGES:
                    self._pending.append((gpa, length))
                else:
                    self.flush_pending = True
            self._switch.arm()
        else:
            self.drop(gpa, length)

    def drop(self, gpa: int, length: int) -> None:
        """Drop the translations of [gpa, gpa+length), precisely or by a flush before the
        next run. Call it between runs or from an exception hook, never from inside
        translated code (an I/O or MMIO callback)."""
        if not self.invalidate(gpa, length):
            self.flush_pending = True

    def catch_up(self) -> None:
        """Between runs: the ranges queued while the guest ran, then the flush if one is due."""
        with self._lock:
            ranges, self._pending = self._pending, []
        for gpa, length in ranges:
            if self.flush_pending:
                break
            self.drop(gpa, length)
        if self.flush_pending:
            self.flush_pending = False
            self._uc.ctl_flush_tb()

    def invalidate(self, gpa: int, length: int) -> bool:
        """Drop translated code for [gpa, gpa+length) with ctl_remove_cache. True if done
        precisely; False if the caller must flush all translated code instead."""
        end = gpa + length
        if end <= self._ram_end and self._invalidate_physical is not None:
            self._invalidate_physical(self._uc._uch, gpa, end)
            return True
        hs = self._hs
        hs.save()
        paging = Paging(hs.cr(0), hs.cr(3), hs.cr(4), hs.efer)
        if paging.mode() != "none":
            # ctl_remove_cache translates as a code fetch at the current CPL: only for pages
            # our walk shows fetchable at linear == physical.
            user = hs.hflags & HF_CPL_MASK == 3
            page = gpa & ~(PAGE_SIZE - 1)
            while page < end:
                if not self._identity_fetchable(page, paging, user):
                    return False
                page += PAGE_SIZE
        return self._remove_cache(gpa, end)

    def _identity_fetchable(self, page, paging, user) -> bool:
        result = walk(paging, self._memory, page)
        return result.physical == page and access_error(result, paging, False, user, fetch=True) is None

    def _remove_cache(self, start, end) -> bool:
        """ctl_remove_cache, undoing what a fault inside it would leave behind."""
        hs = self._hs
        before = hs.exception_fields()
        self._uc.ctl_remove_cache(start, end)
        hs.save()
        if hs.exception_fields() == before:
            return True
        hs.set_exception_fields(before)
        hs.restore()
        return False

    def close(self) -> None:
        self._uc = None


def _ram_at_offset_zero(memory) -> int:
    """The end of guest RAM if it is the first region mapped (the engine maps them in this
    order, so its RAM block sits at RAM offset 0), else 0: no physical invalidation."""
    regions = list(memory.regions())
    if regions and regions[0][0] == 0 and not regions[0][3]:
        return regions[0][1]
    return 0
