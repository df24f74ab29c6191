//! sf-invoke-api.
