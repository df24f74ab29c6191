//! sf-oauth-callback.
