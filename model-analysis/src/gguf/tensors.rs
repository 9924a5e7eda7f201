//! The tensor-info table: each tensor's name, dimensions, type and offset, checked
//! against the file (known types, extents inside the data section, no overlaps), and the
//! parameter count summed from the dimensions.

use std::io::{Read, Seek};

use super::*;

impl<R: Read + Seek> Parser<'_, '_, '_, R> {
    pub(super) fn tensor_infos(&mut self, info: &mut GgufInfo, walk: u64) -> Result<(), Stop> {
        let mut parameters: u128 = 0;
        let mut extents: Vec<(u64, u64, u32)> = Vec::new();
        for _ in 0..walk {
            self.tick(STEP_COST)?;
            let name = match self.string(MAX_KEY_LEN)? {
                Ok(name) => name,
                Err(len) => {
                    return Err(Stop::Finding(
                        FindingKind::MalformedHeader,
                        format!("GGUF tensor name of {len} bytes"),
                    ));
                }
            };
            let n_dims = self.src.u32()?;
            if n_dims > MAX_DIMS {
                return Err(Stop::Finding(
                    FindingKind::MalformedHeader,
                    format!("tensor {} has {n_dims} dimensions (max {MAX_DIMS})", clip(&name)),
                ));
            }
            let mut dims = [1u64; MAX_DIMS as usize];
            for dim in dims.iter_mut().take(n_dims as usize) {
                *dim = self.count()?;
            }
            let ggml_type = self.src.u32()?;
            let offset = self.src.u64()?;
            let elements = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
            let Some(elements) = elements else {
                return Err(Stop::Finding(
                    FindingKind::MalformedHeader,
                    format!("tensor {} has dimensions whose product overflows", clip(&name)),
                ));
            };
            parameters += u128::from(elements);
            info.tensors_read += 1;
            // An extent, and its share of the vector's spare capacity.
            self.keep(2 * size_of::<(u64, u64, u32)>(), "GGUF tensor extents")?;
            self.check_tensor_type(&name, ggml_type, &dims, offset, &mut extents);
        }
        if walk < info.tensor_count {
            return Err(Stop::Budget(
                Budget::Items,
                format!("the first {walk} of {} GGUF tensor infos were parsed", info.tensor_count),
            ));
        }
        info.parameter_count = Some(u64::try_from(parameters).unwrap_or(u64::MAX));
        self.check_tensor_extents(info, &extents);
        Ok(())
    }

    fn check_tensor_type(
        &mut self,
        name: &str,
        ggml_type: u32,
        dims: &[u64; MAX_DIMS as usize],
        offset: u64,
        extents: &mut Vec<(u64, u64, u32)>,
    ) {
        let Some((block, type_size)) = ggml_type_size(ggml_type) else {
            self.scan.find(
                FindingKind::MalformedHeader,
                format!("tensor {} has unknown ggml type {ggml_type}", clip(name)),
            );
            return;
        };
        if !dims[0].is_multiple_of(block) {
            self.scan.find(
                FindingKind::MalformedHeader,
                format!(
                    "tensor {}: row of {} elements is not a whole number of {block}-element blocks",
                    clip(name),
                    dims[0]
                ),
            );
            return;
        }
        let bytes = dims[1..]
            .iter()
            .try_fold((dims[0] / block).saturating_mul(type_size), |acc, &d| acc.checked_mul(d))
            .filter(|_| (dims[0] / block).checked_mul(type_size).is_some());
        match bytes {
            Some(bytes) => extents.push((offset, bytes, u32::try_from(extents.len()).unwrap_or(u32::MAX))),
            None => self
                .scan
                .find(FindingKind::MalformedHeader, format!("tensor {}: byte size overflows", clip(name))),
        }
    }

    /// Tensor data must lie inside the file, after the header, aligned.
    fn check_tensor_extents(&mut self, info: &GgufInfo, extents: &[(u64, u64, u32)]) {
        let header_end = self.src.pos();
        let data_start = header_end.div_ceil(info.alignment).saturating_mul(info.alignment);
        let mut reported = 0;
        for &(offset, bytes, index) in extents {
            let end = data_start.checked_add(offset).and_then(|s| s.checked_add(bytes));
            let misaligned = offset % info.alignment != 0;
            if end.is_none_or(|end| end > self.src.len()) {
                reported += 1;
                if reported <= 4 {
                    self.scan.find(
                        FindingKind::TensorOutOfBounds,
                        format!("tensor #{index} ({bytes} bytes at data offset {offset}) ends past the end of the file ({} bytes)", self.src.len()),
                    );
                }
            } else if misaligned {
                self.scan.report(
                    crate::Finding::new(
                        FindingKind::MalformedHeader,
                        format!("tensor #{index} data offset {offset} is not aligned to {}", info.alignment),
                    )
                    .with_severity(Severity::Low),
                );
            }
        }
    }
}
