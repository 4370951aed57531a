// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IERC721Receiver {
    function onERC721Received(address operator, address from, uint256 tokenId, bytes calldata data)
        external
        returns (bytes4);
}

/// @title TicketNFT: ERC-721 tickets of one show, with a primary sale and a resale marketplace.
/// @notice Every ownership change emits ERC-721 `Transfer`; every paid change of hands (the
/// primary sale and each resale) also emits `TicketSold` with its price in wei.
contract TicketNFT {
    // ------------------------------------------------------------------ ERC-721 events
    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);
    event Approval(address indexed owner, address indexed approved, uint256 indexed tokenId);
    event ApprovalForAll(address indexed owner, address indexed operator, bool approved);

    // ------------------------------------------------------------------ marketplace events
    event Listed(uint256 indexed tokenId, address indexed seller, uint256 price);
    event Unlisted(uint256 indexed tokenId, address indexed seller);
    /// seller is the organizer for a primary sale, the previous owner for a resale.
    event TicketSold(uint256 indexed tokenId, address indexed seller, address indexed buyer, uint256 price);

    string public name;
    string public symbol;
    address public immutable organizer;
    uint256 public immutable primaryPrice;
    uint256 public immutable maxSupply;
    uint256 public totalMinted;

    mapping(uint256 => address) private _owners;
    mapping(address => uint256) private _balances;
    mapping(uint256 => address) private _approvals;
    mapping(address => mapping(address => bool)) private _operators;
    /// tokenId => asking price in wei; 0 = not listed.
    mapping(uint256 => uint256) public listings;

    error NotOwnerNorApproved();
    error NonexistentToken();
    error InvalidReceiver();
    error WrongPrice(uint256 expected, uint256 sent);
    error SoldOut();
    error NotListed();
    error OnlyOrganizer();
    error PaymentFailed();

    constructor(string memory name_, string memory symbol_, uint256 primaryPrice_, uint256 maxSupply_) {
        name = name_;
        symbol = symbol_;
        organizer = msg.sender;
        primaryPrice = primaryPrice_;
        maxSupply = maxSupply_;
    }

    // ------------------------------------------------------------------ primary sale

    /// Buy a new ticket at the primary price: mints it to the buyer.
    function buy() external payable returns (uint256 tokenId) {
        if (msg.value != primaryPrice) revert WrongPrice(primaryPrice, msg.value);
        tokenId = _mint(msg.sender);
        emit TicketSold(tokenId, organizer, msg.sender, msg.value);
        _pay(organizer, msg.value);
    }

    /// Issue a ticket without a sale (comps, giveaways).
    function mintTo(address to) external returns (uint256) {
        if (msg.sender != organizer) revert OnlyOrganizer();
        return _mint(to);
    }

    function burn(uint256 tokenId) external {
        address owner = ownerOf(tokenId);
        if (!_isApprovedOrOwner(msg.sender, owner, tokenId)) revert NotOwnerNorApproved();
        delete listings[tokenId];
        delete _approvals[tokenId];
        _balances[owner] -= 1;
        delete _owners[tokenId];
        emit Transfer(owner, address(0), tokenId);
    }

    // ------------------------------------------------------------------ resale marketplace

    function list(uint256 tokenId, uint256 price) external {
        if (ownerOf(tokenId) != msg.sender) revert NotOwnerNorApproved();
        if (price == 0) revert WrongPrice(1, 0);
        listings[tokenId] = price;
        emit Listed(tokenId, msg.sender, price);
    }

    function unlist(uint256 tokenId) external {
        if (ownerOf(tokenId) != msg.sender) revert NotOwnerNorApproved();
        delete listings[tokenId];
        emit Unlisted(tokenId, msg.sender);
    }

    /// Buy a listed ticket at its asking price; the seller is paid in the same transaction.
    function buyListed(uint256 tokenId) external payable {
        uint256 price = listings[tokenId];
        if (price == 0) revert NotListed();
        if (msg.value != price) revert WrongPrice(price, msg.value);
        address seller = ownerOf(tokenId);
        _transfer(seller, msg.sender, tokenId);
        emit TicketSold(tokenId, seller, msg.sender, price);
        _pay(seller, price);
    }

    // ------------------------------------------------------------------ ERC-721

    function supportsInterface(bytes4 id) external pure returns (bool) {
        return id == 0x01ffc9a7 || id == 0x80ac58cd || id == 0x5b5e139f; // ERC165, 721, metadata
    }

    function balanceOf(address owner) external view returns (uint256) {
        return _balances[owner];
    }

    function ownerOf(uint256 tokenId) public view returns (address owner) {
        owner = _owners[tokenId];
        if (owner == address(0)) revert NonexistentToken();
    }

    function tokenURI(uint256 tokenId) external view returns (string memory) {
        ownerOf(tokenId);
        return "";
    }

    function approve(address to, uint256 tokenId) external {
        address owner = ownerOf(tokenId);
        if (msg.sender != owner && !_operators[owner][msg.sender]) revert NotOwnerNorApproved();
        _approvals[tokenId] = to;
        emit Approval(owner, to, tokenId);
    }

    function getApproved(uint256 tokenId) external view returns (address) {
        ownerOf(tokenId);
        return _approvals[tokenId];
    }

    function setApprovalForAll(address operator, bool approved) external {
        _operators[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    function isApprovedForAll(address owner, address operator) external view returns (bool) {
        return _operators[owner][operator];
    }

    function transferFrom(address from, address to, uint256 tokenId) public {
        if (!_isApprovedOrOwner(msg.sender, from, tokenId)) revert NotOwnerNorApproved();
        _transfer(from, to, tokenId);
    }

    function safeTransferFrom(address from, address to, uint256 tokenId) external {
        safeTransferFrom(from, to, tokenId, "");
    }

    function safeTransferFrom(address from, address to, uint256 tokenId, bytes memory data) public {
        transferFrom(from, to, tokenId);
        if (to.code.length > 0) {
            bytes4 answer = IERC721Receiver(to).onERC721Received(msg.sender, from, tokenId, data);
            if (answer != IERC721Receiver.onERC721Received.selector) revert InvalidReceiver();
        }
    }

    // ------------------------------------------------------------------ internals

    function _mint(address to) private returns (uint256 tokenId) {
        if (to == address(0)) revert InvalidReceiver();
        if (totalMinted >= maxSupply) revert SoldOut();
        tokenId = ++totalMinted;
        _owners[tokenId] = to;
        _balances[to] += 1;
        emit Transfer(address(0), to, tokenId);
    }

    function _transfer(address from, address to, uint256 tokenId) private {
        if (ownerOf(tokenId) != from) revert NotOwnerNorApproved();
        if (to == address(0)) revert InvalidReceiver();
        delete listings[tokenId];
        delete _approvals[tokenId];
        _balances[from] -= 1;
        _balances[to] += 1;
        _owners[tokenId] = to;
        emit Transfer(from, to, tokenId);
    }

    function _isApprovedOrOwner(address spender, address owner, uint256 tokenId) private view returns (bool) {
        if (_owners[tokenId] != owner) return false;
        return spender == owner || _approvals[tokenId] == spender || _operators[owner][spender];
    }

    function _pay(address to, uint256 amount) private {
        (bool ok, ) = payable(to).call{value: amount}("");
        if (!ok) revert PaymentFailed();
    }
}
