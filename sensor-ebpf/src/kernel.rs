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
#[inline(always)]
pub(crate) fn file_of_fd(fd: u64) -> KResult<u64> {
    if !has(feature::FILE_IDENTITY) {
        return Err(ReadError);
    }
    let files: u64 = read(current_task(), off!(task_files))?;
    let fdt: u64 = read(files, off!(files_fdt))?;
    let max_fds: u32 = read(fdt, off!(fdtable_max_fds))?;
    if fd >= u64::from(max_fds) {
        return Err(ReadError);
    }
    let fd_array: u64 = read(fdt, off!(fdtable_fd))?;
    let file: u64 = read(fd_array, (fd * 8) as u32)?;
    if file == 0 { Err(ReadError) } else { Ok(file) }
}

/// The inode of an open file, as the kernel sees it now.
#[inline(always)]
pub(crate) fn file_identity(file: u64) -> KResult<FileIdentity> {
    let inode: u64 = read(file, off!(file_f_inode))?;
    let mode: u16 = read(inode, off!(inode_i_mode))?;
    let sb: u64 = read(inode, off!(inode_i_sb))?;
    Ok(FileIdentity {
        dev: read(sb, off!(super_block_s_dev))?,
        mode: u32::from(mode),
        ino: read(inode, off!(inode_i_ino))?,
        size: read(inode, off!(inode_i_size))?,
        mtime_sec: read(inode, off!(inode_mtime_sec))?,
        mtime_nsec: read(inode, off!(inode_mtime_nsec))?,
        rdev: read(inode, off!(inode_i_rdev))?,
    })
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
