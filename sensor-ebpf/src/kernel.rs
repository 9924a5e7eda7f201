//! Reads of kernel objects through BTF-resolved offsets. Every read goes through
//! `bpf_probe_read_kernel`, so a wrong pointer yields an error, never a fault.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use sensor_common::{FileIdentity, offsets::feature};

use crate::offsets::{has, off};

/// A failed read or a missing kernel feature; the caller counts it.
pub(crate) struct ReadError;

pub(crate) type KResult<T> = Result<T, ReadError>;

/// Reads a `T` at `base + offset`.
#[inline(always)]
pub(crate) fn read<T>(base: u64, offset: u32) -> KResult<T> {
    if base == 0 {
        return Err(ReadError);
    }
    // SAFETY: bpf_probe_read_kernel checks the address; a bad one returns an error.
    unsafe { bpf_probe_read_kernel((base + u64::from(offset)) as *const T) }.map_err(|_| ReadError)
}

#[inline(always)]
pub(crate) fn current_task() -> u64 {
    // SAFETY: no arguments; returns the current task_struct pointer.
    unsafe { bpf_get_current_task() }
}

/// `current->files->fdt->fd[fd]`: the `struct file` behind a descriptor.
///
/// NB: no `max_fds` check: the descriptor was just returned by the kernel, and an fd
/// table is only ever replaced by a larger one, so `fd < max_fds` holds.
#[inline(always)]
pub(crate) fn file_of_fd(fd: u64) -> KResult<u64> {
    if !has(feature::FILE_IDENTITY) {
        return Err(ReadError);
    }
    let files: u64 = read(current_task(), off!(task_files))?;
    let fdt: u64 = read(files, off!(files_fdt))?;
    let fd_array: u64 = read(fdt, off!(fdtable_fd))?;
    let file: u64 = read(fd_array, (fd * 8) as u32)?;
    if file == 0 { Err(ReadError) } else { Ok(file) }
}

/// The inode of an open file and the two fields the filter needs; the rest of its
/// identity is read only for what is forwarded.
pub(crate) struct Inode {
    pub(crate) ptr: u64,
    pub(crate) mode: u32,
    pub(crate) size: u64,
}

#[inline(always)]
pub(crate) fn inode_of(file: u64) -> KResult<Inode> {
    let ptr: u64 = read(file, off!(file_f_inode))?;
    let mode: u16 = read(ptr, off!(inode_i_mode))?;
    Ok(Inode { ptr, mode: u32::from(mode), size: read(ptr, off!(inode_i_size))? })
}

/// The full identity of a forwarded file.
#[inline(always)]
pub(crate) fn file_identity(inode: &Inode) -> KResult<FileIdentity> {
    let sb: u64 = read(inode.ptr, off!(inode_i_sb))?;
    Ok(FileIdentity {
        dev: read(sb, off!(super_block_s_dev))?,
        mode: inode.mode,
        ino: read(inode.ptr, off!(inode_i_ino))?,
        size: inode.size,
        mtime_sec: read(inode.ptr, off!(inode_mtime_sec))?,
        mtime_nsec: read(inode.ptr, off!(inode_mtime_nsec))?,
        rdev: read(inode.ptr, off!(inode_i_rdev))?,
        ctime_sec: read(inode.ptr, off!(inode_ctime_sec))?,
        ctime_nsec: read(inode.ptr, off!(inode_ctime_nsec))?,
        _pad: 0,
    })
}

/// `file->f_path.dentry` alone (the filter needs no mount).
#[inline(always)]
pub(crate) fn file_dentry(file: u64) -> KResult<u64> {
    read(file, off!(file_f_path) + off!(path_dentry))
}

/// `dentry->d_name`: length and name pointer in one read. The userspace resolver
/// checks that `name` follows `len` directly (`struct qstr` on 64-bit kernels).
#[inline(always)]
pub(crate) fn dentry_name(dentry: u64) -> KResult<(u32, u64)> {
    let raw: [u8; 12] = read(dentry, off!(dentry_d_name_len))?;
    let len = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let name = u64::from_le_bytes([raw[4], raw[5], raw[6], raw[7], raw[8], raw[9], raw[10], raw[11]]);
    Ok((len, name))
}

/// `file->f_path`: (vfsmount, dentry).
#[inline(always)]
pub(crate) fn file_path(file: u64) -> KResult<(u64, u64)> {
    let path = file + u64::from(off!(file_f_path));
    Ok((read(path, off!(path_mnt))?, read(path, off!(path_dentry))?))
}

pub(crate) const S_IFMT: u32 = 0o170_000;
pub(crate) const S_IFREG: u32 = 0o100_000;
pub(crate) const S_IFCHR: u32 = 0o020_000;
