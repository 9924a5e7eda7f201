//! Reads of kernel objects through BTF-resolved offsets, in either read mode
//! ([`crate::reads`]): a wrong pointer yields an error or zero, never a fault.

use sensor_common::{FileIdentity, offsets::feature};

use crate::{
    offsets::{has, off},
    reads::{Reads, probe},
};

/// A failed read or a missing kernel feature; the caller counts it.
pub(crate) struct ReadError;

pub(crate) type KResult<T> = Result<T, ReadError>;

/// `current->files->fdt->fd[fd]`: the `struct file` behind a descriptor.
///
/// NB: no `max_fds` check: the descriptor was just returned by the kernel, and an fd
/// table is only ever replaced by a larger one, so `fd < max_fds` holds. `fdt->fd` is a
/// `struct file **` indexed by a variable, which no typed load can follow: that one read
/// is a helper call in both modes, and the typed mode types the file again.
#[inline(always)]
pub(crate) fn file_of_fd<R: Reads>(fd: u64) -> KResult<u64> {
    if !has(feature::FILE_IDENTITY) {
        return Err(ReadError);
    }
    let files: u64 = R::field(R::task(), off!(task_files))?;
    let fdt: u64 = R::field(files, off!(files_fdt))?;
    let fd_array: u64 = R::field(fdt, off!(fdtable_fd))?;
    let file: u64 = probe(fd_array, (fd * 8) as u32)?;
    if file == 0 { Err(ReadError) } else { Ok(R::retype(file, off!(btf_struct_file))) }
}

/// The inode of an open file and the two fields the filter needs; the rest of its
/// identity is read only for what is forwarded.
pub(crate) struct Inode {
    pub(crate) ptr: u64,
    pub(crate) mode: u32,
    pub(crate) size: u64,
}

#[inline(always)]
pub(crate) fn inode_of<R: Reads>(file: u64) -> KResult<Inode> {
    let ptr: u64 = R::field(file, off!(file_f_inode))?;
    let mode: u16 = R::field(ptr, off!(inode_i_mode))?;
    Ok(Inode { ptr, mode: u32::from(mode), size: R::field(ptr, off!(inode_i_size))? })
}

/// The full identity of a forwarded file.
#[inline(always)]
pub(crate) fn file_identity<R: Reads>(inode: &Inode) -> KResult<FileIdentity> {
    let sb: u64 = R::field(inode.ptr, off!(inode_i_sb))?;
    Ok(FileIdentity {
        dev: R::field(sb, off!(super_block_s_dev))?,
        mode: inode.mode,
        ino: R::field(inode.ptr, off!(inode_i_ino))?,
        size: inode.size,
        mtime_sec: R::field(inode.ptr, off!(inode_mtime_sec))?,
        mtime_nsec: R::field(inode.ptr, off!(inode_mtime_nsec))?,
        rdev: R::field(inode.ptr, off!(inode_i_rdev))?,
        ctime_sec: R::field(inode.ptr, off!(inode_ctime_sec))?,
        ctime_nsec: R::field(inode.ptr, off!(inode_ctime_nsec))?,
        _pad: 0,
    })
}

/// `file->f_path.dentry` alone (the filter needs no mount).
#[inline(always)]
pub(crate) fn file_dentry<R: Reads>(file: u64) -> KResult<u64> {
    R::field(file, off!(file_f_path) + off!(path_dentry))
}

/// `dentry->d_name`: length and name pointer.
#[inline(always)]
pub(crate) fn dentry_name<R: Reads>(dentry: u64) -> KResult<(u32, u64)> {
    R::qstr(dentry, off!(dentry_d_name_len), off!(dentry_d_name_name))
}

/// `file->f_path`: (vfsmount, dentry).
#[inline(always)]
pub(crate) fn file_path<R: Reads>(file: u64) -> KResult<(u64, u64)> {
    let path = off!(file_f_path);
    Ok((R::field(file, path + off!(path_mnt))?, R::field(file, path + off!(path_dentry))?))
}

pub(crate) const S_IFMT: u32 = 0o170_000;
pub(crate) const S_IFREG: u32 = 0o100_000;
pub(crate) const S_IFCHR: u32 = 0o020_000;
