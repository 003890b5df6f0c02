//! The request limits of the Modbus application protocol (V1.1b3), checked before anything is
//! sent: quantities per function code and the 16-bit address space.

use crate::core::error::{Error, Result};

/// Coils or discrete inputs one read may ask for (function codes 0x01, 0x02).
pub const MAX_READ_BITS: u16 = 2000;
/// Coils one write may carry (0x0F).
pub const MAX_WRITE_BITS: u16 = 1968;
/// Registers one read may ask for (0x03, 0x04) and the read half of 0x17.
pub const MAX_READ_REGISTERS: u16 = 125;
/// Registers one write may carry (0x10).
pub const MAX_WRITE_REGISTERS: u16 = 123;
/// Registers the write half of read/write multiple registers (0x17) may carry.
pub const MAX_READ_WRITE_REGISTERS: u16 = 121;

/// Checks `1 <= quantity <= max` and that `address + quantity` stays inside 0..=65535.
pub fn check_range(what: &str, address: u16, quantity: usize, max: u16) -> Result<u16> {
    if quantity == 0 || quantity > usize::from(max) {
        return Err(Error::InvalidArgument(format!(
            "{what}: quantity {quantity} is outside 1..{max}"
        )));
    }
    // quantity <= max <= 2000 here, so it fits a u16.
    let quantity = quantity as u16;
    if u32::from(address) + u32::from(quantity) > 65_536 {
        return Err(Error::InvalidArgument(format!(
            "{what}: address {address} + quantity {quantity} goes beyond address 65535"
        )));
    }
    Ok(quantity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_address_ranges_are_checked() {
        assert_eq!(check_range("x", 0, 125, MAX_READ_REGISTERS), Ok(125));
        assert!(check_range("x", 0, 126, MAX_READ_REGISTERS).is_err());
        assert!(check_range("x", 0, 0, MAX_READ_REGISTERS).is_err());
        assert_eq!(check_range("x", 65_535, 1, MAX_READ_BITS), Ok(1));
        assert!(check_range("x", 65_535, 2, MAX_READ_BITS).is_err());
        assert_eq!(check_range("x", 63_536, 2000, MAX_READ_BITS), Ok(2000));
    }
}
