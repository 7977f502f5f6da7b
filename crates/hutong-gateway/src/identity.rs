use tonic::{Request, Status};

/// Request metadata naming the submitting department (development identity;
/// the security work replaces it with the verified client certificate).
pub const DEPARTMENT_HEADER: &str = "x-hutong-department";

/// The department a request comes from. The one place identity is decided:
/// never from the payload.
pub fn department_from_request<T>(request: &Request<T>) -> Result<String, Status> {
    let value = request
        .metadata()
        .get(DEPARTMENT_HEADER)
        .ok_or_else(|| Status::unauthenticated(format!("missing {DEPARTMENT_HEADER} metadata")))?;
    let dept = value.to_str().map_err(|_| Status::unauthenticated(format!("{DEPARTMENT_HEADER} is not ASCII")))?.trim();
    let valid = !dept.is_empty()
        && dept.len() <= 64
        && dept.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid {
        return Err(Status::unauthenticated(format!("{DEPARTMENT_HEADER} must be 1-64 of [a-z0-9_-]")));
    }
    Ok(dept.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn department_comes_from_metadata_only() {
        let mut r = Request::new(());
        assert_eq!(department_from_request(&r).unwrap_err().code(), tonic::Code::Unauthenticated);
        r.metadata_mut().insert(DEPARTMENT_HEADER, "gongan".parse().unwrap());
        assert_eq!(department_from_request(&r).unwrap(), "gongan");
        r.metadata_mut().insert(DEPARTMENT_HEADER, "../etc".parse().unwrap());
        assert!(department_from_request(&r).is_err());
    }
}
