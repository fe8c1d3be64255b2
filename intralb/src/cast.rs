//! A value of a generic type as a concrete type, when that is what it is: how the outer layers
//! pass intralb's own bodies through without boxing them.

use std::any::Any;

/// `value` as a `U`, if that is its type; else `value` back.
pub(crate) fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut value = Some(value);
    match (&mut value as &mut dyn Any).downcast_mut::<Option<U>>() {
        Some(same) => Ok(same.take().expect("just put there")),
        None => Err(value.expect("not taken")),
    }
}

#[cfg(test)]
mod tests {
    use super::cast;

    #[test]
    fn a_value_casts_to_its_own_type_only() {
        assert_eq!(cast::<u8, u8>(7), Ok(7));
        assert_eq!(cast::<u8, u16>(7), Err(7));
    }
}
